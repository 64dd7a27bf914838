"""The licence of every file that trains or validates weights, and the licence of the weights.

Weights are derived from their training data, so they carry its terms. A source is recorded with
its licence as the source states it, where it says so, and what the licence allows: commercial
use, derivatives, and whether derivatives must be shared alike. From the training sources the
weights' own licence follows (`weights_licence`):

- every source allows commercial use and derivatives and asks no share-alike: the weights may
  ship in the Apache-2.0 wheel as a default (`shippable`);
- any NonCommercial, NoDerivatives, copyleft (GPL, share-alike) or unstated source: the weights
  are **opt-in** (`opt_in`), under the most restrictive source's terms; `--method auto` never picks
  them, and naming them with `--weights` says their licence once per run.

Validation and test data are recorded the same way but do not decide the weights' licence:
scoring a checkpoint on a scan is not redistributing it.

Torch-free: the CLI's `info`, the model cards and the tests read it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srgan3d.serialisation import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSource:
    """Where a training or validation file comes from and the terms its source states.

    `commercial` and `derivatives` are None where the terms were not found (treated as not
    allowed); `share_alike` is True for copyleft terms (GPL, CC BY-SA and -NC-SA)."""

    name: str
    source: str
    licence: str
    stated_in: str
    commercial: bool | None
    derivatives: bool | None
    share_alike: bool | None

    @property
    def allows_shipping(self) -> bool:
        """May weights derived from this source ship as a default in the Apache-2.0 wheel?"""
        return self.commercial is True and self.derivatives is True and self.share_alike is False

    @property
    def restriction(self) -> str:
        """What keeps derived weights out of the Apache-2.0 default ('' when nothing does)."""
        parts = []
        if self.commercial is False:
            parts.append("NonCommercial")
        if self.derivatives is False:
            parts.append("NoDerivatives")
        if self.share_alike:
            parts.append("copyleft / share-alike")
        if self.commercial is None or self.derivatives is None or self.share_alike is None:
            parts.append("terms not stated")
        return ", ".join(parts)


UNSTATED = DataSource(
    name="not a known source",
    source="a file this project does not know (your own data?)",
    licence="not stated",
    stated_in="-",
    commercial=None,
    derivatives=None,
    share_alike=None,
)

# The sources of every file that trained or validated this project's weights (../shared/data/README.md,
# tools/fetch_training_data.sh), matched on the file's name.
SOURCES: tuple[tuple[str, DataSource], ...] = (
    (r"chaos|\d\d-T2SPIR", DataSource(
        "CHAOS challenge, MR part (T2-SPIR)",
        "CHAOS challenge data (Kavur et al., Medical Image Analysis 2021), Zenodo 3431873",
        "CC BY-NC-SA 4.0",
        "the CHAOS challenge's rules, item 2 (\"Any commercial use of data is forbidden\")",
        commercial=False, derivatives=True, share_alike=True)),
    (r"renalseg", DataSource(
        "renalsegmentor test subjects (coronal T2W TSE)",
        "PyPI renalsegmentor==2.0.0, segment/data/test_data/",
        "GPL-3.0",
        "the renalsegmentor package's licence (PyPI metadata)",
        commercial=True, derivatives=True, share_alike=True)),
    (r"ukat", DataSource(
        "ukat GE dual-echo GRE subject ge_01",
        "GitHub UKRIN-MAPS/ukat, experiments/unwrapping/data/ge_01/",
        "GPL-3.0",
        "the ukat repository's LICENSE",
        commercial=True, derivatives=True, share_alike=True)),
    (r"mdreg", DataSource(
        "mdreg variable-flip-angle liver T1 series (VFA.pkl)",
        "PyPI mdreg==0.4.4, mdreg/datafiles/VFA.pkl",
        "Apache-2.0",
        "the mdreg package's licence (PyPI metadata)",
        commercial=True, derivatives=True, share_alike=False)),
    (r"totalseg", DataSource(
        "TotalSegmentator example and test volumes",
        "the totalsegmentator sdist on PyPI (tests/reference_files/) and its aorta_report example",
        "Apache-2.0",
        "the TotalSegmentator repository's LICENSE",
        commercial=True, derivatives=True, share_alike=False)),
    (r"mni152|icbm152", DataSource(
        "MNI ICBM152 2009a T1 template",
        "nilearn 0.14.1 wheel, nilearn/datasets/data/",
        "MNI ICBM permission notice (Copyright 1993-2004 Louis Collins, McConnell Brain Imaging Centre)",
        "the MNI's notice on the ICBM 2009 templates: permission to use, copy, modify and distribute for any "
        "purpose without fee, with the notice kept (nilearn's own description says 'unknown')",
        commercial=True, derivatives=True, share_alike=False)),
    (r"colin27|ch2", DataSource(
        "Colin27 (MNI single-subject average) T1",
        "Debian mricron-data 1.2.20211006+dfsg-4, /usr/share/mricron/templates/ch2.nii.gz",
        "BSD-3-Clause",
        "Debian's copyright file for mricron-data (Files: *)",
        commercial=True, derivatives=True, share_alike=False)),
    (r"inia19", DataSource(
        "INIA19 rhesus macaque T1 template",
        "Debian mricron-data 1.2.20211006+dfsg-4, /usr/share/mricron/templates/inia19-t1-brain.nii.gz",
        "not checked upstream",
        "Debian lists the mricron-data package as BSD-3-Clause with no entry for the template; its NITRC "
        "project's own terms could not be read here",
        commercial=None, derivatives=None, share_alike=None)),
)  # fmt: skip


def source_of(file: str | Path) -> DataSource:
    """The known source of a training or validation file, matched on its name; `UNSTATED` else."""
    name = Path(str(file).split("[", 1)[0]).name.lower()
    for pattern, src in SOURCES:
        if re.search(pattern, name, re.IGNORECASE):
            return src
    return UNSTATED


def data_entry(file: str | Path) -> dict[str, object]:
    """A model card's `training_data` / `validation_data` entry: {file, source, licence, terms}."""
    src = source_of(file)
    return {
        "file": str(file),
        "source": src.source,
        "licence": src.licence,
        "stated_in": src.stated_in,
        "commercial_use": src.commercial,
        "derivatives": src.derivatives,
        "share_alike": src.share_alike,
    }


def data_entries(files: Sequence[str | Path | Mapping[str, object]]) -> list[dict[str, object]]:
    """`data_entry` for each file (entries already carrying a licence are kept as they are)."""
    out = []
    for f in files:
        if isinstance(f, Mapping):
            out.append(dict(f) if "licence" in f else {**data_entry(str(f["file"])), **dict(f)})
        else:
            out.append(data_entry(f))
    return out


@dataclass(frozen=True)
class WeightsLicence(Record):
    """The licence weights carry, derived from the sources that trained them."""

    licence: str
    shippable: bool
    opt_in: bool
    why: str
    sources: tuple[str, ...]


APACHE = "Apache-2.0"


def weights_licence(training: Sequence[Mapping[str, object]]) -> WeightsLicence:
    """The licence of weights trained on `training` (card entries from `data_entries`).

    All sources permissive (commercial use and derivatives allowed, no share-alike): Apache-2.0,
    the project's licence, shippable as a default. Otherwise the weights take the terms of the
    most restrictive source (NonCommercial first, then NoDerivatives, then unstated, then
    copyleft) and are opt-in; `why` names every source that decided it."""
    srcs = [
        DataSource(
            name=str(e["file"]), source=str(e.get("source", "")), licence=str(e.get("licence", "not stated")),
            stated_in=str(e.get("stated_in", "")), commercial=_opt_bool(e.get("commercial_use")),
            derivatives=_opt_bool(e.get("derivatives")), share_alike=_opt_bool(e.get("share_alike")),
        )
        for e in training
    ]  # fmt: skip
    licences = tuple(sorted({s.licence for s in srcs}))
    if not srcs:
        return WeightsLicence("not stated", False, True, "the model card lists no training data", ())
    blocking = [s for s in srcs if not s.allows_shipping]
    if not blocking:
        return WeightsLicence(APACHE, True, False, "every training source allows commercial use and derivatives "
                              "without share-alike: " + ", ".join(licences), licences)  # fmt: skip

    def rank(s: DataSource) -> int:
        if s.commercial is False:
            return 0
        if s.derivatives is False:
            return 1
        if s.commercial is None or s.derivatives is None or s.share_alike is None:
            return 2
        return 3

    worst = min(blocking, key=rank)
    named = sorted({f"{s.licence} ({s.restriction})" for s in blocking})
    files = sorted({Path(s.name.split("[", 1)[0]).name for s in blocking})
    shown = ", ".join(files[:6]) + (f" and {len(files) - 6} more" if len(files) > 6 else "")
    why = f"trained on {'; '.join(named)} data: {shown}; opt-in only, never the default"
    return WeightsLicence(worst.licence, False, True, why, licences)


def _opt_bool(v: object) -> bool | None:
    return v if isinstance(v, bool) else None


def card_licence(card: Mapping[str, object]) -> WeightsLicence:
    """The licence a model card records (`licence`), or the one its training data imply."""
    rec = card.get("licence")
    if isinstance(rec, Mapping) and "licence" in rec:
        return WeightsLicence(
            licence=str(rec["licence"]), shippable=bool(rec.get("shippable")), opt_in=bool(rec.get("opt_in", True)),
            why=str(rec.get("why", "")), sources=tuple(map(str, _as_list(rec.get("sources")))),
        )  # fmt: skip
    return weights_licence(data_entries(_as_list(card.get("training_data"))))


def _as_list(v: object) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else []


_announced: set[str] = set()


def announce_licence(name: str, card: Mapping[str, object]) -> None:
    """Say once per run that weights are opt-in, and under which licence."""
    lic = card_licence(card)
    if lic.opt_in and name not in _announced:
        _announced.add(name)
        log.warning("weights %s: licence %s — %s", name, lic.licence, lic.why)


def notice_text(cards: Mapping[str, Mapping[str, object]]) -> str:
    """The NOTICE shipped beside the weights: every weights file (name -> its model card) with its
    licence, whether it is opt-in, and the source and licence of each file that trained it
    (`tools/weights_notice.py` writes it; a test keeps it equal to the cards)."""
    lines = [
        "srgan3d weights: licences and data sources",
        "==========================================",
        "",
        "The srgan3d code is Apache-2.0. Each weights file below is derived from the data that trained",
        "it and carries the licence stated here. Weights marked opt-in are not used unless named with",
        "--weights; `srgan3d upscale --method auto` never picks them. Validation data chose checkpoints",
        "only and do not pass their terms to the weights. Generated from the model cards by",
        "tools/weights_notice.py.",
        "",
    ]
    for name in sorted(cards):
        card = cards[name]
        lic = card_licence(card)
        lines += [f"{name}.pt", f"  licence: {lic.licence}{' (opt-in)' if lic.opt_in else ''}", f"  why: {lic.why}"]
        for key, title in (("training_data", "trained on"), ("inherited_training_data", "inherited from its start")):
            entries = _as_list(card.get(key))
            if entries:
                lines.append(f"  {title}:")
                for e in data_entries(entries):
                    lines.append(f"    - {Path(str(e['file']).split('[', 1)[0]).name}: {e['licence']}; {e['source']}")
        lines.append("")
    return "\n".join(lines)
