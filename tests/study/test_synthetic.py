"""The simulated cohort (`srgan3d.study.synthetic`): the classes, files and columns asked for."""

from __future__ import annotations

import json

import pandas as pd


def test_synthetic_cohort_has_the_requested_classes_and_files(tiny_cohort):
    df = pd.read_csv(tiny_cohort)
    main = df[df["set"] != "centre_B"]
    assert len(main) == 24 and main["response"].isin(["CR", "PR"]).sum() == 12
    ext = df[df["set"] == "centre_B"]
    assert len(ext) == 10 and ext["response"].isin(["CR", "PR"]).sum() == 5 and ext["patient_id"].str.startswith("E").all()
    # the internal split is the draw `evaluate` would make without the column
    from srgan3d.study.cohort import split_patients

    _, test = split_patients(main["response"].isin(["CR", "PR"]).to_numpy(int), test_size=0.2, seed=1)
    assert (main["set"].iloc[test] == "test").all() and (main["set"] == "test").sum() == len(test)
    assert set(df.columns) >= {
        "diameter_mm",
        "arterial_enhancement",
        "afp_ng_ml",
        "child_pugh",
        "bclc",
        "age",
        "sex",
    }
    assert json.loads((tiny_cohort.parent / "cohort.json").read_text())["simulated"] is True
    for p in df["image"].head(3):
        assert (tiny_cohort.parent / p).is_file()
