# Two commands on a fresh Debian machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= runs/demo

.PHONY: setup demo test stockfish jemalloc clean

$(BIN)/transcendence: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

stockfish:
	@command -v stockfish >/dev/null 2>&1 || test -x /usr/games/stockfish || \
	  { (apt-get install -y -q stockfish || (apt-get update -q && apt-get install -y -q stockfish)) >/dev/null || \
	    sudo sh -c 'apt-get update -q && apt-get install -y -q stockfish' >/dev/null; }

# The allocator `transcendence` re-executes itself on (cli.retain_freed_memory); without it, glibc's.
jemalloc:
	@/sbin/ldconfig -p | grep -q libjemalloc.so.2 || \
	  { (apt-get install -y -q libjemalloc2 || (apt-get update -q && apt-get install -y -q libjemalloc2)) >/dev/null || \
	    sudo sh -c 'apt-get update -q && apt-get install -y -q libjemalloc2' >/dev/null; }

setup: $(BIN)/transcendence stockfish jemalloc

demo: setup
	$(BIN)/transcendence demo --out $(OUT)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

clean:
	rm -rf $(VENV) runs build dist *.egg-info
