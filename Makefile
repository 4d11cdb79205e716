# smarketing-lab: two commands on a fresh machine.
#   make report   set up, build sample data, run the whole chain, write reports/index.html
#   make test     set up and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help setup test report lab bench expected clean

help:
	@echo "make report   run the whole lab on the shipped data -> reports/index.html"
	@echo "make test     run the test suite"
	@echo "make lab      open JupyterLab on notebooks/ with the project's kernel"
	@echo "make bench    run the benchmarks in benchmarks/"
	@echo "make expected rewrite tests/expected/ after a change that moves numbers on purpose"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name smarketing-lab --display-name "smarketing-lab" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

report: $(STAMP)
	$(BIN)/lab report

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_calibration.py
	$(BIN)/python benchmarks/bench_replication.py

expected: $(STAMP)
	$(BIN)/python tests/expected_results.py

clean:
	rm -rf $(VENV) reports runs data/generated
