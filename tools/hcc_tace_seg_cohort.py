"""Turn the HCC-TACE-Seg clinical table into an srgan3d cohort table.

    python tools/hcc_tace_seg_cohort.py [SOURCE_DIR] -o OUT/cohort.csv [--study OUT/study]

SOURCE_DIR holds `clinical_data.csv` (the collection's `data table` sheet as CSV; default:
examples/hcc_tace_seg, a copy of ../shared/data/hcc_tace_seg). Every column is mapped as the
collection's glossary defines it (glossary.csv beside it):

- the three readers' first-follow-up mRECIST (`1_mRECIST`.. `3_mRECIST`, codes 1 = CR, 2 = PR,
  3 = SD, 4 = PD, empty = not read) -> `response_1`..`response_3` as CR/PR/SD/PD;
- time to progression (`TTP`, weeks; `Censored_0_progressed_1`: 1 = progressed) -> `ttp_time`,
  `ttp_event`; overall survival (`OS`, weeks; `Death_1_StillAliveorLostToFU_0`: 1 = died) ->
  `os_time`, `os_event`;
- clinical columns with their units in the names (`age_years`, `afp_ng_ml`, `afp_log10_ng_ml`,
  `tumour_size_cm`, which has gaps), yes/no columns as 1/0, categories as written;
- staging as written (`bclc_stage` Stage-A..D, `child_pugh_class` A-C, `clip_group`
  Stage_ 0-2 / Stage_3 / Stage_4-6, `okuda_stage` Stage I-III, `tnm_stage` Stage-I..IVB), for
  `srgan3d evaluate --comparators` to rank in their documented orders.

Writes `cohort.json` beside the table (source, licence, what each column came from). With
`--study DIR` it then runs the clinical study on it (`make real-example`): `srgan3d evaluate`
with the arguments of `STUDY_ARGS` (no images: clinical model, staging comparators, TTP and OS,
the readers' agreement); `--features F.csv` adds the radiomics models on features computed
elsewhere (a table keyed by patient_id; rows of the patients the study leaves out are set aside).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MRECIST = {1: "CR", 2: "PR", 3: "SD", 4: "PD"}
YES_NO = {"Portal Vein Thrombosis": "portal_vein_thrombosis", "Evidence_of_cirh": "cirrhosis",
          "Vascular invasion": "vascular_invasion", "Metastasis": "metastasis", "Diabetes": "diabetes"}
STAGES = {"BCLC": "bclc_stage", "CPS": "child_pugh_class", "CLIP": "clip_group", "Okuda": "okuda_stage",
          "TNM": "tnm_stage"}


def _read(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
        return ""
    code = int(float(str(v)))
    if code not in MRECIST:
        raise ValueError(f"mRECIST code {v!r} is not 1-4 (glossary: 1 = CR, 2 = PR, 3 = SD, 4 = PD)")
    return MRECIST[code]


#: The clinical study of the real example: complete candidates only (tumour size has 52 gaps, so
#: it is summarised, not modelled); AFP as measured: it spans 1.4 to 566,530 ng/ml, so the skewness rule
#: (`srgan3d.study.transforms`) models it on log10 and the report says so.
CLINICAL = ("afp_ng_ml", "portal_vein_thrombosis", "tumour_involvement_over_50pct", "multinodular")
COMPARATORS = ("bclc_stage", "child_pugh_class", "clip_group", "okuda_stage", "tnm_stage")
STUDY_ARGS = ["--clinical", ",".join(CLINICAL), "--comparators", ",".join(COMPARATORS), "--time-unit", "weeks",
              "--response-ties", "drop", "--seed", "0", "--workers", "1"]


def convert(source: Path) -> pd.DataFrame:
    raw = pd.read_csv(source / "clinical_data.csv")
    out = pd.DataFrame({"patient_id": raw["TCIA_ID"].astype(str)})
    for k in (1, 2, 3):
        out[f"response_{k}"] = [_read(v) for v in raw[f"{k}_mRECIST"]]
    out["ttp_time"] = raw["TTP"].round(4)
    out["ttp_event"] = raw["Censored_0_progressed_1"].astype(int)
    out["os_time"] = raw["OS"].round(4)
    out["os_event"] = raw["Death_1_StillAliveorLostToFU_0"].astype(int)
    out["age_years"] = raw["age"]
    out["male"] = (raw["Sex"] == 1).astype(int)
    out["hepatitis"] = raw["hepatitis"].astype(str).str.strip()
    for col, name in YES_NO.items():
        out[name] = raw[col].astype(int)
    out["multinodular"] = (raw["tumor_nodul"].str.strip() == "multinodular").astype(int)
    out["tumour_involvement_over_50pct"] = (raw["T_involvment"].str.strip() == ">50%").astype(int)
    out["afp_ng_ml"] = raw["AFP"]
    out["afp_log10_ng_ml"] = raw["AFP"].map(lambda v: round(math.log10(v), 6))
    out["tumour_size_cm"] = raw["Tr_Size"]  # empty where the collection gives none
    for col, name in STAGES.items():
        out[name] = raw[col].astype(str).str.strip()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", nargs="?", default=str(ROOT / "examples" / "hcc_tace_seg"))
    ap.add_argument("-o", "--output", required=True, help="the cohort table to write (CSV)")
    ap.add_argument("--study", help="then run the clinical study on it into this folder")
    ap.add_argument("--features", help="with --study: radiomic features computed elsewhere (evaluate --features)")
    args = ap.parse_args()
    source, out = Path(args.source), Path(args.output)
    if not (source / "clinical_data.csv").is_file():
        raise SystemExit(f"{source}: no clinical_data.csv (the HCC-TACE-Seg data table as CSV)")
    table = convert(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)
    card = {
        "simulated": False,
        "name": "HCC-TACE-Seg (The Cancer Imaging Archive), clinical table",
        "source": "TCIA collection HCC-TACE-Seg, DOI 10.7937/TCIA.5FNA-0924; HCC-TACE-Seg_clinical_data-V2.xlsx",
        "licence": "CC BY 4.0",
        "time_unit": "weeks",
        "columns": {"response_1..3": "1_mRECIST..3_mRECIST (1 CR, 2 PR, 3 SD, 4 PD)",
                    "ttp_time/ttp_event": "TTP / Censored_0_progressed_1",
                    "os_time/os_event": "OS / Death_1_StillAliveorLostToFU_0", **STAGES},
    }
    out.with_name("cohort.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {out}: {len(table)} patients")
    if args.study:
        from srgan3d.cli import app

        app(["evaluate", str(out), "-o", args.study, *STUDY_ARGS, *(["--features", args.features] if args.features else [])])


if __name__ == "__main__":
    main()
