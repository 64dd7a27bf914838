# Set-up and the two commands of the README. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch; a GPU user installs a CUDA build into .venv first (see README) and
# `make` keeps it, because the stamp below only installs torch when none is present.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo_out

.PHONY: venv demo test test-slow lint bench clean real-example

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: venv
	$(BIN)/srgan3d demo -o $(DEMO_OUT)

test: venv
	$(BIN)/python -m pytest -q

# The slow tests (end-to-end evaluate, the demo, Chromium layouts, the heaviest model checks); CI runs them after `make test`.
test-slow: venv
	$(BIN)/python -m pytest -q -m slow

# The clinical half of the study on a real public TACE cohort (HCC-TACE-Seg, examples/hcc_tace_seg):
# three readers' mRECIST, TTP and OS in weeks, staging as written. No images: see the README.
REAL_OUT ?= real_example
real-example: venv
	$(BIN)/python tools/hcc_tace_seg_cohort.py -o $(REAL_OUT)/cohort.csv --study $(REAL_OUT)/study

lint: venv
	$(BIN)/ruff check srgan3d tests benchmarks
	$(BIN)/mypy

bench: venv
	$(BIN)/python benchmarks/cpu_generator.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(REAL_OUT) .pytest_cache

# Rebuild the shipped weights from scratch: gather the real MRI (registry-shipped brain templates,
# mdreg's liver T1 and the TotalSegmentator MR and CTs; CHAOS, ukat and renalseg for validation and
# test), train RECIPE on licence-clean data only (DATA=clean; tools/train_x2.sh holds the split by
# subject), export the checkpoint validation preferred, then test it on the held-out abdominal MRI
# (CHAOS 13 and 19 with their organ masks, renalseg sub01, the TotalSegmentator MR's held-out x
# 82-116 slab) and record that in its model card, which is what lets `--method auto` use it; then
# rewrite the weights' NOTICE. Not part of CI; about 10 minutes on a 2-core CPU with AVX512-BF16
# (70 in fp32 on AVX2), plus ~10 for the test. `make weights-gan` then fine-tunes it adversarially
# into srgan3d_x2_gan. `make weights DATA=nc WEIGHTS_NAME=srgan3d_x2_nc` (and weights-gan) rebuild
# the NonCommercial research pair (CHAOS and GPL-3.0 renalseg data in training; opt-in only).
RECIPE ?= recipes/cpu_x2.yaml
GAN_RECIPE ?= recipes/cpu_x2_gan.yaml
WEIGHTS_NAME ?= srgan3d_x2
DATA ?= clean
WEIGHTS_DIR := srgan3d/sr/weights
R := data/real
TEST_DATA = $(R)/chaos_13-T2SPIR-src.nii.gz:T2 $(R)/chaos_19-T2SPIR-src.nii.gz:T2 \
	$(R)/renalseg_sub01_cor_t2w_tse.nii.gz:T2 $(R)/totalseg_mr_test_x82-116.nii.gz:T1
TEST_MASKS = $(R)/chaos_13-T2SPIR-mask.nii.gz $(R)/chaos_19-T2SPIR-mask.nii.gz - -
.PHONY: weights weights-gan
weights: venv
	bash tools/fetch_training_data.sh
	rm -rf data/runs/$(WEIGHTS_NAME)
	RUN=data/runs/$(WEIGHTS_NAME) RECIPE=$(RECIPE) DATA=$(DATA) bash tools/train_x2.sh
	$(BIN)/srgan3d export data/runs/$(WEIGHTS_NAME) -o $(WEIGHTS_DIR)/$(WEIGHTS_NAME).pt --checkpoint best \
		--description "Fidelity generator trained by 'make weights RECIPE=$(RECIPE)'"
	$(BIN)/python benchmarks/quality.py $(TEST_DATA) --masks $(TEST_MASKS) --weights $(WEIGHTS_NAME) \
		--card $(WEIGHTS_NAME) --json benchmarks/quality_$(WEIGHTS_NAME).json
	$(BIN)/python tools/weights_notice.py

weights-gan: venv
	rm -rf data/runs/$(WEIGHTS_NAME)_gan
	RUN=data/runs/$(WEIGHTS_NAME)_gan RECIPE=$(GAN_RECIPE) DATA=$(DATA) bash tools/train_x2.sh --init $(WEIGHTS_NAME)
	$(BIN)/srgan3d export data/runs/$(WEIGHTS_NAME)_gan -o $(WEIGHTS_DIR)/$(WEIGHTS_NAME)_gan.pt \
		--description "GAN generator: $(WEIGHTS_NAME) fine-tuned adversarially by 'make weights-gan'"
	$(BIN)/python benchmarks/quality.py $(TEST_DATA) --masks $(TEST_MASKS) --weights $(WEIGHTS_NAME) \
		--weights $(WEIGHTS_NAME)_gan --card $(WEIGHTS_NAME)_gan --json benchmarks/quality_$(WEIGHTS_NAME)_gan.json
	$(BIN)/python tools/weights_notice.py
