# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test unit lint services man bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# compat: the checkout on sys.path through a .pth line, as an installed package is found; the default
	# editable mode imports a finder (pathlib, importlib.util) into every command's start, about 12 ms of oarsub
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $@

services:
	bash scripts/services.sh postgresql redis

# the demo keeps its state in SQLite: Redis is all it needs
demo: install
	bash scripts/services.sh redis
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: lint services
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25

unit: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

# ruff, mypy and the import contract of pyproject.toml ([tool.importlinter])
lint: install
	$(BIN)/ruff check oar_celery tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

man: install
	$(BIN)/python scripts/manpages.py

bench: install services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .demo-state build *.egg-info
