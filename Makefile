# Two commands from a fresh clone: `make demo` and `make test`. Everything else is set up here.
SHELL := /bin/bash
# Text is UTF-8 whatever the machine's locale (tables and logs hold non-ASCII characters).
export PYTHONUTF8 := 1
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# CPU-only machines get PyTorch's CPU build; on a GPU cluster: make setup TORCH_INDEX=<your CUDA wheel index>
TORCH_VERSION := 2.13.0
TORCH_INDEX ?=

.PHONY: setup demo test lint format bench rulegraph report clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[workflow,dev]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml --report results/report.html
	@cat results/table1.md

test: setup
	$(BIN)/pytest -q -ra

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

# The rule graph shown in the README (tests/workflow/test_rulegraph.py checks it is current).
rulegraph: setup
	$(BIN)/snakemake --configfile config/config.yaml --rulegraph 2>/dev/null > docs/rulegraph.dot
	command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz)
	dot -Tpng docs/rulegraph.dot > docs/rulegraph.png

clean:
	rm -rf results/* .snakemake
	touch results/.gitkeep
