# Two commands from a fresh clone: `make demo` and `make test`. Everything else is set up here.
SHELL := /bin/bash
# Text is UTF-8 whatever the machine's locale (tables and logs hold non-ASCII characters).
export PYTHONUTF8 := 1
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# PyTorch goes in first. Without a GPU: its CPU build (torch==X+cpu from the configured package
# index, or from TORCH_CPU_INDEX=<PyTorch's CPU wheel index> where that index lacks it), never the
# multi-GB CUDA build. With a GPU (nvidia-smi found): the default build. TORCH_INDEX=<wheel index>
# overrides both.
TORCH_VERSION := 2.13.0
TORCH_INDEX ?=
TORCH_CPU_INDEX ?=

.PHONY: setup demo remedies instructions test lint format bench calibration rulegraph report config-doc clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	if [ -n "$(TORCH_INDEX)" ]; then $(BIN)/pip install -q torch==$(TORCH_VERSION) --index-url $(TORCH_INDEX); \
	elif command -v nvidia-smi >/dev/null; then $(BIN)/pip install -q torch==$(TORCH_VERSION); \
	elif [ -z "$(TORCH_CPU_INDEX)" ]; then $(BIN)/pip install -q torch==$(TORCH_VERSION)+cpu; \
	else $(BIN)/pip install -q torch==$(TORCH_VERSION)+cpu --index-url $(TORCH_CPU_INDEX); fi
	$(BIN)/pip install -q -e '.[workflow,dev]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml --report results/table1/report.html
	@cat results/table1/table1.md

# The remedies study on the demo (config/remedies_demo.yaml layered on the demo config).
REMEDIES_CONFIG := --configfile config/config.yaml config/remedies_demo.yaml
remedies: setup
	$(BIN)/snakemake --cores $(CORES) $(REMEDIES_CONFIG)
	$(BIN)/snakemake --cores $(CORES) $(REMEDIES_CONFIG) --report results/remedies/report.html
	@cat results/remedies/remedies.md

# The instructions study on the demo (config/instructions_demo.yaml layered on the demo config).
INSTRUCTIONS_CONFIG := --configfile config/config.yaml config/instructions_demo.yaml
instructions: setup
	$(BIN)/snakemake --cores $(CORES) $(INSTRUCTIONS_CONFIG)
	$(BIN)/snakemake --cores $(CORES) $(INSTRUCTIONS_CONFIG) --report results/instructions/report.html
	@cat results/instructions/instructions.md

# Two sessions side by side on the two cores: the end-to-end run with the tests that read it (marked
# e2e by tests/conftest.py: one session, so the run happens once), and the rest of the suite. The
# end-to-end session's report follows the other's.
test: setup
	$(BIN)/pytest -q -ra -p no:xdist -m e2e > .pytest-e2e.log 2>&1 & e2e=$$!; \
	$(BIN)/pytest -q -ra -p no:xdist -m "not e2e"; rest=$$?; \
	wait $$e2e; ran=$$?; cat .pytest-e2e.log; test $$rest -eq 0 -a $$ran -eq 0

lint: setup
	$(BIN)/ruff check src tests bench workflow/scripts
	$(BIN)/ruff format --check src tests bench workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

format: setup
	$(BIN)/ruff format src tests bench workflow/scripts
	$(BIN)/ruff check --fix src tests bench workflow/scripts
	$(BIN)/snakefmt Snakefile workflow/rules

bench: setup
	$(BIN)/python bench/run_all.py

# The judges and intervals calibrated by simulation at the demo's and the paper's sizes
# (docs/methods.md shows the table; exits 1 when a figure misses its goal).
calibration: setup
	$(BIN)/python bench/calibration.py

# The rule graph shown in the README (tests/workflow/test_rulegraph.py checks it is current).
rulegraph: setup
	$(BIN)/snakemake --configfile config/config.yaml --rulegraph 2>/dev/null > docs/rulegraph.dot
	command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz)
	dot -Tpng docs/rulegraph.dot > docs/rulegraph.png

# config/README.md: every config key from workflow/schemas/config.schema.yaml
# (tests/unit/test_config_doc.py checks it is current).
config-doc: setup
	$(BIN)/python -m brainmr.config_doc

clean:
	rm -rf results/* .snakemake
	touch results/.gitkeep
