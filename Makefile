# Two commands a new user needs (see README): `make run` and `make test`.
# Both create .venv on first use; the install is pinned by constraints.txt
# (torch==2.13.0 CPU: no CUDA packages are ever pulled); knowd-bench (bench/, `knowd bench`)
# is installed beside knowd.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast install bench clean

$(BIN)/.installed: pyproject.toml bench/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]' -e ./bench
	@if $(BIN)/pip list 2>/dev/null | grep -qi '^nvidia-'; then echo "CUDA packages were pulled in: check constraints.txt" >&2; exit 1; fi
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/knowd run

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not integration"

clean:
	rm -rf $(VENV) data
