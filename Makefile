# nesgan — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision are pinned to the builds this machine keeps on disk; other
# pairs fail to import torchvision::nms together.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast bench lint docs pictures tiled cc65 clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install nesgan with its test extras (quick once done)

tiled: ## install Tiled Map Editor (tmxrasterizer) when missing; tests use it as the real client
	@command -v tmxrasterizer >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tiled >/dev/null; \
	  else echo "tiled is not installed and this is not root: run 'sudo apt-get install tiled' (its tests will be skipped)"; fi; }

cc65: ## install cc65 (ca65, ld65) when missing; a test rebuilds the NES viewer from its 6502 source
	@command -v ca65 >/dev/null && command -v ld65 >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cc65 >/dev/null; \
	  else echo "cc65 is not installed and this is not root: run 'sudo apt-get install cc65' (its test will be skipped)"; fi; }

demo: install ## run every stage end to end on the embedded museum (writes ./demo)
	$(BIN)/nesgan demo --workdir demo

test: install tiled cc65 ## run the test suite (installs everything it needs first)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -n 2 --dist loadfile -q

test-fast: install ## run the tests not marked slow
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -n 2 --dist loadfile -q -m 'not slow'

bench: install ## benchmarks as ratios against reference implementations (writes bench-out/)
	$(BIN)/python -m nesgan.bench --out bench-out

lint: install ## ruff, then the import contracts (stages in layers, no circles; pyproject.toml)
	$(BIN)/ruff check pipeline tests
	cd pipeline && PYTHONPATH=. ../$(BIN)/lint-imports --config ../pyproject.toml

docs: install ## regenerate the command reference (docs/commands.md) from --help
	$(BIN)/python -m nesgan.docs docs/commands.md

pictures: demo tiled ## regenerate the README's pictures (docs/img) from the demo's output
	$(BIN)/python scripts/readme_pictures.py demo docs/img

clean: ## remove build outputs (keeps .venv)
	rm -rf bench-out demo .pytest_cache build *.egg-info pipeline/*.egg-info
