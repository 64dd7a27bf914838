#!/usr/bin/env bash
# Gather the real MRI volumes that registry packages ship, for training and validating the
# generator (`make weights`). Not part of CI. Writes data/real/ (ignored by git).
#   - nilearn's wheel: MNI ICBM152 2009a T1 template (1 mm)
#   - Debian's mricron-data: Colin27 T1 (ch2better 0.5 mm, ch2 1 mm) and the INIA19 primate T1
#   - renalsegmentor's wheel (GPL-3.0): two subjects of real coronal abdominal T2W TSE (Philips,
#     ~1.5 mm in-plane, 5.5 mm slices): sub02 trains, sub01 is held out for testing
#   - mdreg's wheel (Apache-2.0): a real 3D spoiled gradient-echo liver T1 series (VFA.pkl); its
#     10-25 degree volumes (T1-weighted) are written with a diagonal affine from its spacing
#   - from ../shared/data when present (not on any registry): the eight CHAOS T2-SPIR subjects,
#     the ukat GRE subject (two echoes), the TotalSegmentator MR and the two abdominal CTs
set -euo pipefail
cd "$(dirname "$0")/.."
out=data/real
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "nilearn==0.14.1"
python3 - "$tmp" "$out" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(f"{sys.argv[1]}/nilearn-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if "mni_icbm152_t1" in n.lower() and n.endswith((".nii", ".nii.gz"))]
    if not names:
        sys.exit(f"no MNI T1 template in {wheel}: {[n for n in z.namelist() if 'icbm' in n.lower()]}")
    for n in names:
        target = f"{sys.argv[2]}/mni152_{n.rsplit('/', 1)[-1]}"
        open(target, "wb").write(z.read(n))
        print("wrote", target)
PY

python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "renalsegmentor==2.0.0"
python3 - "$tmp" "$out" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(f"{sys.argv[1]}/renalsegmentor-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for k in ("01", "02"):
        target = f"{sys.argv[2]}/renalseg_sub{k}_cor_t2w_tse.nii.gz"
        open(target, "wb").write(z.read(f"segment/data/test_data/test_sub_{k}.nii.gz"))
        print("wrote", target)
PY

python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "mdreg==0.4.4"
"${PYTHON:-.venv/bin/python}" - "$tmp" "$out" <<'PY'
import glob, pickle, sys, zipfile
import nibabel as nib
import numpy as np
wheel = glob.glob(f"{sys.argv[1]}/mdreg-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    d = pickle.loads(z.read("mdreg/datafiles/VFA.pkl"))
affine = np.diag([*map(float, d["spacing"]), 1.0])
for fa in (10, 15, 20, 25):  # T1-weighted flip angles (2 degrees is proton-density-like)
    k = [round(float(a)) for a in d["FA"]].index(fa)
    target = f"{sys.argv[2]}/mdreg_vfa_liver_t1_fa{fa}.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(d["array"][..., k], np.float32), affine), target)
    print("wrote", target)
PY

shared=../shared/data
if [ -d "$shared/abdomen_mri/chaos" ]; then
  for f in "$shared"/abdomen_mri/chaos/*-T2SPIR-*.nii.gz; do install -m 644 "$f" "$out/chaos_$(basename "$f")"; done
  for f in "$shared"/abdomen_mri/ukat_ge01_cor_gre_te*.nii.gz "$shared"/totalseg_example_mr_sm.nii.gz "$shared"/ct/*.nii.gz; do
    [ -f "$f" ] && install -m 644 "$f" "$out/"
  done
  echo "copied the CHAOS, ukat, TotalSegmentator MR and CT volumes from $shared"
  # The TotalSegmentator MR (Apache-2.0) split by slab along x: x 0-81 trains the licence-clean
  # default, x 82-116 (35 slices, which no training patch touches) is its held-out T1 test.
  "${PYTHON:-.venv/bin/python}" - "$out" <<'PY'
import sys
import nibabel as nib
out = sys.argv[1]
img = nib.load(f"{out}/totalseg_example_mr_sm.nii.gz")
for name, sl in (("train_x0-81", slice(0, 82)), ("test_x82-116", slice(82, None))):
    part = img.slicer[sl]
    nib.save(nib.Nifti1Image(part.get_fdata(dtype="float32"), part.affine, part.header), f"{out}/totalseg_mr_{name}.nii.gz")
    print("wrote", f"{out}/totalseg_mr_{name}.nii.gz", part.shape)
PY
else
  echo "no $shared/abdomen_mri/chaos: the CHAOS, ukat and CT volumes are not gathered" >&2
fi

if [ ! -d /usr/share/mricron/templates ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq mricron-data >/dev/null
  else
    echo "install Debian's mricron-data (sudo apt-get install mricron-data) for Colin27 and INIA19" >&2
  fi
fi
for f in ch2better.nii.gz ch2.nii.gz; do
  [ -f /usr/share/mricron/templates/$f ] && cp /usr/share/mricron/templates/$f "$out/colin27_$f" && echo "wrote $out/colin27_$f"
done
find /usr/share/mricron -iname '*inia19*t1*.nii*' -exec cp {} "$out/" \; 2>/dev/null || true
ls -la "$out"
