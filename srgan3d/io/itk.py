"""NRRD and MetaImage files through SimpleITK (LPS converted to RAS), and 3D Slicer segmentations
(`.seg.nrrd`), one segment named after `#`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from srgan3d.io.formats import check_finite, is_itk
from srgan3d.volume import LPS_TO_RAS, Volume, VolumeError

if TYPE_CHECKING:
    import SimpleITK as sitk


def split_segment(path: str | Path) -> tuple[Path, str | None]:
    """A mask path with an optional segment selector: ``masks/P001.seg.nrrd#tumour`` (by name) or
    ``...#2`` (by label value), also ``liver.dcm#Liver`` (a DICOM-SEG segment) and ``rs.dcm#GTV``
    (an RTSTRUCT ROI) -> (the file, the selector); a path without one -> (path, None)."""
    text = str(path)
    if "#" in text and not Path(text).exists():
        base, _, segment = text.rpartition("#")
        if segment and (is_itk(Path(base)) or Path(base).is_file()):  # a .seg.nrrd, or a DICOM-SEG / RTSTRUCT file
            return Path(base), segment
    return Path(text), None


class SlicerSegment(NamedTuple):
    """A segment of a 3D Slicer segmentation: its name, label value and layer."""

    name: str
    value: int
    layer: int


def _slicer_segments(img: sitk.Image) -> list[SlicerSegment]:
    """The segments a 3D Slicer segmentation's header lists (``Segment<i>_Name``, ``_LabelValue``,
    ``_Layer``), in order; empty for any other file."""
    header = {k: img.GetMetaData(k) for k in img.GetMetaDataKeys()}
    out = []
    i = 0
    while f"Segment{i}_Name" in header or f"Segment{i}_ID" in header:
        seg = {k: header.get(f"Segment{i}_{k}", "") for k in ("Name", "ID", "LabelValue", "Layer")}
        out.append(SlicerSegment(seg["Name"] or seg["ID"], int(seg["LabelValue"] or 1), int(seg["Layer"] or 0)))
        i += 1
    return out


def read_itk(path: Path, segment: str | None = None) -> Volume:
    """An NRRD / MetaImage file through SimpleITK, as a `Volume` in RAS+.

    ITK's geometry is LPS: world = origin + direction @ (spacing * index), with the array in
    (z, y, x) order. The affine in RAS flips the first two world axes: exact, no resampling. A
    Slicer segmentation (``.seg.nrrd``, a labelmap with one or more layers) gives one segment as a
    0/1 mask: the only one, or the one `segment` names (by name or label value); with several and
    none named, the error lists them.
    """
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise VolumeError(f"{path}: not a readable NRRD/MetaImage file ({str(exc).strip().splitlines()[-1]}); "
                          "re-export or remove it") from exc  # fmt: skip
    if img.GetDimension() != 3:
        raise VolumeError(f"{path}: a {img.GetDimension()}D image (size {img.GetSize()}); srgan3d reads 3D volumes")
    segments = _slicer_segments(img)
    arr = sitk.GetArrayFromImage(img)  # (z, y, x) or (z, y, x, components)
    if segments or segment is not None:
        if not segments:
            raise VolumeError(f"{path}: a segment ({segment!r}) was asked for, but the file lists no segments")
        listing = ", ".join(f"{s.name} (value {s.value})" for s in segments)
        if segment is None:
            if len(segments) > 1:
                raise VolumeError(f"{path}: a segmentation with {len(segments)} segments ({listing}); name one as "
                                  f"{path.name}#NAME or #VALUE")  # fmt: skip
            chosen = segments[0]
        else:
            hits = [s for s in segments if s.name == segment or (segment.isdigit() and s.value == int(segment))]
            if len(hits) != 1:
                raise VolumeError(f"{path}: segment {segment!r} is {'ambiguous' if hits else 'not in the file'}; "
                                  f"its segments: {listing}")  # fmt: skip
            chosen = hits[0]
        layer = arr[..., chosen.layer] if arr.ndim == 4 else arr
        arr = (layer == chosen.value).astype(np.float32)
    elif arr.ndim != 3:
        raise VolumeError(f"{path}: {img.GetNumberOfComponentsPerPixel()} values per voxel; give one 3D scalar volume")
    data = np.ascontiguousarray(np.transpose(arr, (2, 1, 0))).astype(np.float32)
    if sum(n > 1 for n in data.shape) < 3:
        raise VolumeError(f"{path}: image has shape {data.shape}, not a 3D volume (one voxel thick somewhere); "
                          "give the whole series as one 3D file")  # fmt: skip
    data, n_bad = check_finite(data, path)
    direction = np.asarray(img.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(img.GetSpacing(), float)[None, :]
    lps[:3, 3] = img.GetOrigin()
    meta = {"source": str(path), "format": "itk", "source_dtype": img.GetPixelIDTypeAsString(),
            "nonfinite_voxels": n_bad, **({"segment": chosen.name} if segments else {})}  # fmt: skip
    return Volume(data, LPS_TO_RAS @ lps, meta)
