"""Tumour and liver masks from DICOM: Segmentation objects (DICOM-SEG) and RT Structure Sets
(RTSTRUCT), placed on the grid of the image series they reference.

Both are read with pydicom onto a reference `Volume` (the image the mask belongs to, read by
`srgan3d.io.read_volume`), whose meta holds the series' identity (`series_uid`,
`frame_of_reference_uid`). A mask that references another series or frame of reference is refused
with both UIDs named.

- **DICOM-SEG**: the segment is chosen as for Slicer's `.seg.nrrd`: ``liver.dcm#Liver`` by label
  (any case) or ``liver.dcm#1`` by number; with several segments and none named, the error lists
  them. Each frame of that segment is placed by its Image Position (Patient) and the shared (or
  its own) orientation and pixel spacing: its pixel centres must fall on the reference grid's
  voxel centres (within 1% of a voxel), else the SEG is refused. A FRACTIONAL SEG is thresholded
  at 0.5 of its maximum fractional value (stated in the log).
- **RTSTRUCT**: ``rtstruct.dcm#GTV`` names the ROI (any case); several ROIs and none named lists
  them. Each closed planar contour is rasterised on the slice its points lie in: **a voxel is in
  a contour when its centre is inside the polygon or on its edge** (`skimage.draw.polygon`;
  vertices within 1% of a voxel of a voxel centre are put on it first, so the edge rule does not
  depend on the file's last decimals). Contours on one slice combine by the even-odd rule: a
  voxel in an odd number of them is in the ROI, so a contour inside a contour is a hole (its edge
  voxels go with the hole), and separate contours add. A contour whose points do not lie on one
  slice of the grid (within 1% of the slice spacing) is refused, as is an ROI with no contour.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from srgan3d.volume import LPS_TO_RAS, Volume, VolumeError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
#: How far (in voxels) a frame's or contour's position may lie off the reference grid.
GRID_TOLERANCE = 0.01


def dicom_mask_kind(path: str | Path) -> str | None:
    """"seg", "rtstruct" or None (not a DICOM file, or another kind of DICOM object)."""
    import pydicom

    p = Path(path)
    if not p.is_file():
        return None
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"], force=True)
    except Exception:  # noqa: BLE001 - any unreadable file is simply not a DICOM mask
        return None
    uid, modality = str(ds.get("SOPClassUID", "")), str(ds.get("Modality", ""))
    if uid == SEG_SOP_CLASS or modality == "SEG":
        return "seg"
    if uid == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
        return "rtstruct"
    return None


def read_dicom_mask(path: str | Path, selector: str | None, reference: Volume) -> Volume:
    """The mask a DICOM-SEG segment or an RTSTRUCT ROI draws, on `reference`'s grid (uint8 0/1
    as float32), with the reference's affine."""
    import pydicom

    path = Path(path)
    ds = pydicom.dcmread(path, force=True)  # some structure sets come without the file meta header
    kind = dicom_mask_kind(path)
    _check_references(ds, reference, path)
    if kind == "seg":
        data = _seg_mask(ds, selector, reference, path)
    elif kind == "rtstruct":
        data = _rtstruct_mask(ds, selector, reference, path)
    else:
        raise VolumeError(f"{path}: not a DICOM-SEG or RTSTRUCT file")
    meta = {"source": f"{path}#{selector}" if selector else str(path), "format": f"dicom-{kind}"}
    return Volume(data.astype(np.float32), reference.affine.copy(), meta)


def _check_references(ds: Dataset, reference: Volume, path: Path) -> None:
    """The mask must reference the reference image's series and frame of reference."""
    want_series = str(reference.meta.get("series_uid", ""))
    want_frame = str(reference.meta.get("frame_of_reference_uid", ""))
    if not want_series and not want_frame:
        raise VolumeError(f"{path}: a DICOM mask needs its image as a DICOM series (to match their UIDs); the image "
                          f"{reference.meta.get('source', '?')} is not one: give the mask as NIfTI or NRRD")  # fmt: skip
    frame = str(ds.get("FrameOfReferenceUID", "")) or _rt_frame(ds)
    series = _referenced_series(ds)
    if want_frame and frame and frame != want_frame:
        raise VolumeError(f"{path}: references frame of reference {frame}, but the image "
                          f"{reference.meta.get('source', '?')} has {want_frame}: give the mask drawn on this image")  # fmt: skip
    if want_series and series and want_series not in series:
        raise VolumeError(f"{path}: references series {', '.join(sorted(series))}, but the image "
                          f"{reference.meta.get('source', '?')} is series {want_series}: give the mask drawn on this "
                          "image, or the image it was drawn on")  # fmt: skip


def _rt_frame(ds: Dataset) -> str:
    for f in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        return str(f.get("FrameOfReferenceUID", ""))
    return ""


def _referenced_series(ds: Dataset) -> set[str]:
    out = {str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", []) or [] if "SeriesInstanceUID" in s}
    for f in ds.get("ReferencedFrameOfReferenceSequence", []) or []:  # RTSTRUCT
        for study in f.get("RTReferencedStudySequence", []) or []:
            for series in study.get("RTReferencedSeriesSequence", []) or []:
                out.add(str(series.SeriesInstanceUID))
    return out


def _pick(names: dict[int, str], selector: str | None, path: Path, what: str) -> int:
    """The number of the segment/ROI `selector` names (label, any case, or number)."""
    listed = ", ".join(f"{k} ({v})" for k, v in names.items())
    if selector is None:
        if len(names) == 1:
            return next(iter(names))
        raise VolumeError(f"{path}: holds {len(names)} {what}s ({listed}); name one after '#', e.g. "
                          f"{path.name}#{next(iter(names.values()))}")  # fmt: skip
    if selector.strip().isdigit() and int(selector) in names:
        return int(selector)
    matches = [k for k, v in names.items() if v.strip().lower() == selector.strip().lower()]
    if not matches:
        raise VolumeError(f"{path}: no {what} {selector!r}; it holds {listed}")
    return matches[0]


def _voxel_of(reference: Volume) -> np.ndarray:
    """LPS (x, y, z, 1) -> voxel index (i, j, k, 1) of the reference grid."""
    return np.linalg.inv(reference.affine) @ LPS_TO_RAS


def _seg_mask(ds: Dataset, selector: str | None, reference: Volume, path: Path) -> np.ndarray:
    names = {int(s.SegmentNumber): str(s.get("SegmentLabel", "")) for s in ds.SegmentSequence}
    number = _pick(names, selector, path, "segment")
    pixels = ds.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[None]
    threshold = 1.0  # BINARY: 0 or 1
    if str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL":
        top = float(ds.get("MaximumFractionalValue", 255) or 255)
        threshold = top / 2
        log.warning("%s: a FRACTIONAL segmentation, thresholded at 0.5 (%g of %g)", path, threshold, top)
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    to_voxel = _voxel_of(reference)
    out = np.zeros(reference.shape, np.uint8)
    for f, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        if int(_group(frame, shared, "SegmentIdentificationSequence").ReferencedSegmentNumber) != number:
            continue
        iop = _group(frame, shared, "PlaneOrientationSequence").ImageOrientationPatient
        spacing = _group(frame, shared, "PixelMeasuresSequence").PixelSpacing
        ipp = frame.PlanePositionSequence[0].ImagePositionPatient
        plane = pixels[f] >= threshold
        _place(out, plane, np.asarray(ipp, float), np.asarray(iop, float), np.asarray(spacing, float), to_voxel, path, f)
    if not out.any():
        log.warning("%s: segment %d (%s) is empty on this image", path, number, names[number])
    return out


def _group(frame: Dataset, shared: Dataset | None, name: str) -> Dataset:
    if name in frame:
        return frame[name][0]
    if shared is not None and name in shared:
        return shared[name][0]
    raise VolumeError(f"a DICOM-SEG frame has no {name} (neither per frame nor shared)")


def _place(out: np.ndarray, plane: np.ndarray, ipp: np.ndarray, iop: np.ndarray, spacing: np.ndarray,
           to_voxel: np.ndarray, path: Path, frame: int) -> None:  # fmt: skip
    """Scatter one frame (rows x columns) into `out` where its pixel centres fall on the grid."""
    row_dir, col_dir = iop[:3], iop[3:]
    corners = np.array([ipp, ipp + row_dir * spacing[1], ipp + col_dir * spacing[0]])  # (r,c) = (0,0), (0,1), (1,0)
    vox = (to_voxel @ np.c_[corners, np.ones(3)].T).T[:, :3]
    origin, d_col, d_row = vox[0], vox[1] - vox[0], vox[2] - vox[0]
    for d in (origin, d_col, d_row):
        if np.abs(d - np.round(d)).max() > GRID_TOLERANCE:
            raise VolumeError(f"{path}: frame {frame + 1} does not lie on the image's voxel grid (its pixels fall at "
                              f"voxel {np.round(origin, 3).tolist()}); resample the segmentation onto the image")  # fmt: skip
    r, c = np.nonzero(plane)
    idx = np.round(origin[None] + c[:, None] * d_col[None] + r[:, None] * d_row[None]).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(out.shape)), axis=1)
    if not inside.all():
        log.warning("%s: %d voxel(s) of frame %d lie outside the image and are dropped", path, int((~inside).sum()),
                    frame + 1)  # fmt: skip
    idx = idx[inside]
    out[idx[:, 0], idx[:, 1], idx[:, 2]] = 1


def _rtstruct_mask(ds: Dataset, selector: str | None, reference: Volume, path: Path) -> np.ndarray:
    from skimage.draw import polygon

    names = {int(r.ROINumber): str(r.get("ROIName", "")) for r in ds.StructureSetROISequence}
    number = _pick(names, selector, path, "ROI")
    contours = next((c for c in ds.get("ROIContourSequence", []) if int(c.ReferencedROINumber) == number), None)
    seqs = [] if contours is None else list(contours.get("ContourSequence", []) or [])
    if not seqs:
        raise VolumeError(f"{path}: ROI {number} ({names[number]}) has no contour; draw it, or name another ROI")
    to_voxel = _voxel_of(reference)
    parity = np.zeros(reference.shape, np.uint8)
    for n, contour in enumerate(seqs):
        pts = np.asarray(contour.ContourData, float).reshape(-1, 3)
        if len(pts) < 3:
            raise VolumeError(f"{path}: ROI {names[number]!r}, contour {n + 1} has {len(pts)} point(s); a closed "
                              "contour needs at least 3")  # fmt: skip
        vox = (to_voxel @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]
        k = vox[:, 2]
        if np.abs(k - k[0]).max() > GRID_TOLERANCE or abs(k[0] - round(k[0])) > GRID_TOLERANCE:
            raise VolumeError(f"{path}: ROI {names[number]!r}, contour {n + 1} does not lie on one slice of the image "
                              f"(slice index {k.min():.3f} to {k.max():.3f}); its image must be this series")  # fmt: skip
        kk = int(round(k[0]))
        # vertices within GRID_TOLERANCE of a voxel centre are put on it, so that the edge rule
        # (a centre on the edge is inside) does not depend on the 6th decimal of the file's mm
        near = np.abs(vox - np.round(vox)) < GRID_TOLERANCE
        vox = np.where(near, np.round(vox), vox)
        if not 0 <= kk < reference.shape[2]:
            log.warning("%s: ROI %r, contour %d lies outside the image's slices and is dropped", path, names[number], n + 1)
            continue
        ii, jj = polygon(vox[:, 0], vox[:, 1], shape=reference.shape[:2])
        layer = np.zeros(reference.shape[:2], np.uint8)
        layer[ii, jj] = 1
        parity[:, :, kk] ^= layer  # even-odd: a contour inside a contour is a hole
    if not parity.any():
        raise VolumeError(f"{path}: ROI {number} ({names[number]}) covers no voxel of the image; check that it was drawn on it")
    return parity
