#!/usr/bin/env bash
# Train the shipped fidelity generator (`make weights` runs this; RESUME=1 continues a stopped run).
# DATA=clean (the default) trains only on data whose terms allow shipping derived weights in the
# Apache-2.0 wheel (srgan3d/sr/weights/NOTICE); DATA=nc trains the NonCommercial research pair
# (srgan3d_x2_nc) on the CHAOS T2-SPIR subjects and the GPL-3.0 renalseg subject as well.
# The split is by subject (../shared/data/README.md):
#   train (clean): MNI152 2009a and Colin27 brain templates, the mdreg liver T1 (10-25 degrees),
#          the TotalSegmentator MR's x 0-81 slab, the two TotalSegmentator CTs
#   train (nc):    brain templates (MNI152, Colin27, INIA19), renalseg sub02, CHAOS 01 02 03 05 08,
#          the mdreg liver T1 (20 degrees), the two TotalSegmentator CTs
#   validate (picks the checkpoint; validation is not redistribution): CHAOS 10 (T2), ukat GRE
#          subject (T1, both echoes)
#   test (trains and picks nothing): CHAOS 13 and 19, renalseg sub01 (T2), the TotalSegmentator
#          MR's x 82-116 slab (T1)
set -euo pipefail
cd "$(dirname "$0")/.."
R=data/real
RUN=${RUN:-data/runs/srgan3d_x2}
RECIPE=${RECIPE:-recipes/cpu_x2.yaml}
DATA=${DATA:-clean}
resume=()
[ "${RESUME:-0}" = 1 ] && resume=(--resume)
case "$DATA" in
  clean)
    train=($R/mni152_mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz $R/colin27_ch2.nii.gz
           $R/mdreg_vfa_liver_t1_fa10.nii.gz $R/mdreg_vfa_liver_t1_fa15.nii.gz
           $R/mdreg_vfa_liver_t1_fa20.nii.gz $R/mdreg_vfa_liver_t1_fa25.nii.gz
           $R/totalseg_mr_train_x0-81.nii.gz
           $R/totalseg_example_ct_abdomen_pelvis_3mm.nii.gz $R/totalseg_cta_thorax_upper_abdomen_1.5mm.nii.gz) ;;
  nc)
    train=($R/mni152_mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz $R/colin27_ch2.nii.gz $R/inia19-t1-brain.nii.gz
           $R/renalseg_sub02_cor_t2w_tse.nii.gz
           $R/chaos_01-T2SPIR-src.nii.gz $R/chaos_02-T2SPIR-src.nii.gz $R/chaos_03-T2SPIR-src.nii.gz
           $R/chaos_05-T2SPIR-src.nii.gz $R/chaos_08-T2SPIR-src.nii.gz
           $R/mdreg_vfa_liver_t1_fa20.nii.gz
           $R/totalseg_example_ct_abdomen_pelvis_3mm.nii.gz $R/totalseg_cta_thorax_upper_abdomen_1.5mm.nii.gz) ;;
  *) echo "DATA must be clean or nc, not '$DATA'" >&2; exit 2 ;;
esac
.venv/bin/srgan3d train "${train[@]}" \
  --val $R/chaos_10-T2SPIR-src.nii.gz --val $R/ukat_ge01_cor_gre_te2.2.nii.gz --val $R/ukat_ge01_cor_gre_te5.1.nii.gz \
  -o "$RUN" --config "$RECIPE" "${resume[@]}" "$@"
