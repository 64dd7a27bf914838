"""A super-resolved volume written as a derived DICOM series that a PACS, OHIF or 3D Slicer places
on the original (`srgan3d upscale --output-format dicom`), with pydicom.

- **Identity**: a new Series Instance UID and new SOP Instance UIDs; the source's Study Instance
  UID, Frame of Reference UID, patient and study modules kept; Image Type DERIVED\\SECONDARY;
  Series Description "<original> SR 2x"; Series Number the source's + 1000.
- **Provenance**: Derivation Description (method, weights and their sha256), the source
  instances in Source Image Sequence (the source slice each SR slice lies in), the source series
  in Referenced Series Sequence.
- **Geometry**: Image Position (Patient) per slice, Image Orientation (Patient), Pixel Spacing,
  Slice Thickness and Spacing Between Slices of the SR grid, all from the volume's affine.
- **Pixels**: signed 16-bit integers with one Rescale Slope/Intercept for the series, chosen from
  the volume's range so that every float value is stored within half a step; Window
  Center/Width carried over from the source.
- **Writing**: into a hidden temporary folder beside the target, renamed onto it when every file
  is written (`srgan3d.atomic.atomic_dir`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from srgan3d.atomic import atomic_dir
from srgan3d.volume import LPS_TO_RAS, Volume, VolumeError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Tags of the source that describe its own pixels or instance and must not be carried over.
_DROP = (
    "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue", "PixelPaddingRangeLimit",
    "RescaleType", "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
    "IconImageSequence", "ReferencedImageSequence", "SourceImageSequence", "DerivationCodeSequence",
    "FrameIncrementPointer", "NumberOfFrames", "SliceLocation", "AcquisitionMatrix", "ImageComments",
)  # fmt: skip
SERIES_NUMBER_OFFSET = 1000


def dicom_source_meta(volume: Volume) -> bool:
    """Does `volume` come from a DICOM series whose files can serve as the template?"""
    files = volume.meta.get("files") or []
    return volume.meta.get("format") == "dicom" and bool(files) and Path(files[0]).is_file()


def rescale_for(data: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) mapping the int16 range onto `data`'s range: value = stored x slope +
    intercept, so that rounding stores every value within half a slope."""
    lo, hi = float(np.min(data)), float(np.max(data))
    slope = (hi - lo) / 65535.0 if hi > lo else 1.0
    return slope, lo + 32768.0 * slope


def write_dicom_series(
    volume: Volume, folder: str | Path, source: Volume, *, derivation: str, label: str = "SR 2x",
) -> Path:  # fmt: skip
    """Write `volume` (on an SR grid of `source`, which was read from a DICOM series) as a derived
    series in `folder` (one file per slice, atomically as a folder)."""
    if not dicom_source_meta(source):
        raise VolumeError(f"{source.meta.get('source', '?')}: not read from a DICOM series; write NIfTI instead")
    try:
        return _write(volume, Path(folder), source, derivation=derivation, label=label)
    except (KeyError, AttributeError, TypeError, ValueError) as exc:  # a template header pydicom cannot carry over
        raise VolumeError(f"{source.meta.get('source', '?')}: cannot write a derived DICOM series from its header "
                          f"({type(exc).__name__}: {exc}); use --output-format nifti for this scan") from exc


def _write(volume: Volume, folder: Path, source: Volume, *, derivation: str, label: str) -> Path:
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    template = pydicom.dcmread(source.meta["files"][0], stop_before_pixels=True)
    lps = LPS_TO_RAS @ volume.affine  # RAS -> LPS (the flip is its own inverse)
    row_step, col_step, slice_step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    dx, dy, dz = (float(np.linalg.norm(v)) for v in (row_step, col_step, slice_step))
    iop = [*(row_step / dx), *(col_step / dy)]
    slope, intercept = rescale_for(volume.data)
    stored = np.clip(np.round((volume.data.astype(np.float64) - intercept) / slope), -32768, 32767).astype(np.int16)
    series_uid = generate_uid()
    src_positions = _source_positions(source)
    with atomic_dir(folder) as tmp:
        for k in range(volume.shape[2]):
            ipp = (lps @ np.array([0.0, 0.0, float(k), 1.0]))[:3]
            ds = _slice_dataset(template, series_uid, k, ipp, iop, (dy, dx), dz, slope, intercept, label, derivation)
            ds.SourceImageSequence = _source_reference(template, source, src_positions, ipp, slice_step / dz)
            ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[0])
            ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
            meta = pydicom.dataset.FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            ds.save_as(tmp / f"{k + 1:05d}.dcm", enforce_file_format=True)
    return folder


def _slice_dataset(
    template: Dataset, series_uid: str, k: int, ipp: np.ndarray, iop: Sequence[float], pixel_spacing: tuple[float, float],
    dz: float, slope: float, intercept: float, label: str, derivation: str,
) -> Dataset:  # fmt: skip
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import generate_uid

    ds = copy.deepcopy(template)
    for tag in _DROP:
        if tag in ds:
            delattr(ds, tag)
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(template.get("SeriesNumber", 0) or 0) + SERIES_NUMBER_OFFSET
    ds.SeriesDescription = f"{template.get('SeriesDescription', '') or template.get('Modality', '')} {label}".strip()[:64]
    ds.ImageType = ["DERIVED", "SECONDARY"] + list(template.get("ImageType", [])[2:])
    ds.DerivationDescription = derivation[:1024]
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [_ds(v) for v in ipp]
    ds.ImageOrientationPatient = [_ds(v) for v in iop]
    ds.PixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
    ds.SliceThickness = _ds(dz)
    ds.SpacingBetweenSlices = _ds(dz)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
    ref = DicomSequence([_series_ref(template)])
    ds.ReferencedSeriesSequence = ref
    return ds


def _ds(v: float) -> str:
    """A Decimal String value: at most 16 characters, as exact as that allows."""
    for digits in range(12, 3, -1):
        text = f"{float(v):.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{float(v):.3e}"


def _series_ref(template: Dataset) -> Dataset:
    from pydicom.dataset import Dataset as DicomDataset

    ref = DicomDataset()
    ref.SeriesInstanceUID = template.SeriesInstanceUID
    return ref


def _source_positions(source: Volume) -> np.ndarray:
    lps = LPS_TO_RAS @ source.affine
    return np.array([(lps @ np.array([0.0, 0.0, float(k), 1.0]))[:3] for k in range(source.shape[2])])


def _source_reference(template: Dataset, source: Volume, positions: np.ndarray, ipp: np.ndarray,
                      normal: np.ndarray) -> list[Dataset]:  # fmt: skip
    """The source instance whose slice this SR slice lies in (the nearest along the normal)."""
    from pydicom.dataset import Dataset as DicomDataset

    uids = source.meta.get("sop_instance_uids") or []
    if not uids:
        return []
    k = int(np.argmin(np.abs((positions - ipp) @ normal)))
    ref = DicomDataset()
    ref.ReferencedSOPClassUID = template.SOPClassUID
    ref.ReferencedSOPInstanceUID = uids[k]
    return [ref]
