# Set-up and the two commands of the README. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch; a GPU user installs a CUDA build into .venv first (see README) and
# `make` keeps it, because the stamp below only installs torch when none is present.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo_out

.PHONY: venv demo test lint bench clean

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

lint: venv
	$(BIN)/ruff check srgan3d tests benchmarks
	$(BIN)/mypy

bench: venv
	$(BIN)/python benchmarks/cpu_generator.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

# Rebuild the shipped weights from scratch: fetch the registry-shipped MRI volumes (brain templates
# and renalsegmentor's two abdominal subjects), train RECIPE, export the EMA generator into the
# package, then test it on the held-out abdominal MRI (renalseg sub01 and tests/data's
# TotalSegmentator scan) and record that in its model card, which is what lets `--method auto`
# use it. Validation (the log only) on the ukat subject of ../shared/data when present. Not part
# of CI; about 10 minutes on a 2-core CPU, plus ~5 for the test. On a GPU: RECIPE=recipes/gpu_x2.yaml.
RECIPE ?= recipes/cpu_x2.yaml
WEIGHTS_NAME ?= srgan3d_x2
WEIGHTS_DIR := srgan3d/sr/weights
R := data/real
TRAIN_DATA = $(R)/mni152_mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz $(R)/inia19-t1-brain.nii.gz \
	$(R)/colin27_ch2.nii.gz $(R)/renalseg_sub02_cor_t2w_tse.nii.gz
UKAT := ../shared/data/abdomen_mri/ukat_ge01_cor_gre_te2.2.nii.gz ../shared/data/abdomen_mri/ukat_ge01_cor_gre_te5.1.nii.gz
VAL_DATA = $(foreach f,$(wildcard $(UKAT)),--val $(f))
TEST_DATA = $(R)/renalseg_sub01_cor_t2w_tse.nii.gz tests/data/totalseg_example_mr_sm.nii.gz
.PHONY: weights
weights: venv
	bash tools/fetch_training_data.sh
	rm -rf data/runs/$(WEIGHTS_NAME)
	$(BIN)/srgan3d train $(TRAIN_DATA) -o data/runs/$(WEIGHTS_NAME) --config $(RECIPE) $(VAL_DATA)
	$(BIN)/srgan3d export data/runs/$(WEIGHTS_NAME) -o $(WEIGHTS_DIR)/$(WEIGHTS_NAME).pt \
		--description "Trained by 'make weights RECIPE=$(RECIPE)'"
	$(BIN)/python benchmarks/quality.py $(TEST_DATA) --weights $(WEIGHTS_NAME) --card $(WEIGHTS_NAME) \
		--json benchmarks/quality_$(WEIGHTS_NAME).json
