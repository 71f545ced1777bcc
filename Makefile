# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install slmgate (torch pinned to the CPU build), run the demo
#   make test   the same set-up, then lint and the whole test suite
#   make mutate mutation testing of the trust core and the policy (slow; not part of make test)
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean mutate docs-images

$(BIN)/python:
	@echo "==> creating virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip's own lines are filtered to what shows progress (what it collects, installs, and errors).
$(STAMP): $(BIN)/python pyproject.toml constraints.txt hashes.txt
	@echo "==> installing the hash-pinned dependencies (hashes.txt)"
	@$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r hashes.txt 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/python -c "import regorus" || { echo "==> the hash-pinned install failed"; exit 1; }
	@echo "==> installing slmgate with runtime and dev extras (constraints.txt pins torch==2.13.0 CPU); a few minutes on a fresh machine"
	@set -o pipefail; $(BIN)/python -m pip install --progress-bar off -c constraints.txt -e '.[runtime,dev]' 2>&1 \
	  | { grep --line-buffered -E '^(Collecting|Installing collected|Successfully|Building|ERROR|error)' || true; } \
	  | sed -u 's/^/    /' || { echo "==> pip install failed; run it by hand to see everything:"; \
	    echo "    $(BIN)/python -m pip install -c constraints.txt -e '.[runtime,dev]'"; exit 1; }
	@# An editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set every process
	@# would compile slmgate's sources again (60 ms of a 0.45 s promote): compile them once here.
	@$(BIN)/python -m compileall -q engine evidence runtime tests bench >/dev/null
	@touch $(STAMP)
	@echo "==> installed slmgate in $(VENV)"

install:
	@if $(MAKE) --no-print-directory -q $(STAMP); then \
	  echo "==> slmgate in $(VENV) is up to date (pyproject.toml, constraints.txt, hashes.txt unchanged)"; \
	else $(MAKE) --no-print-directory $(STAMP); fi

demo: install
	@echo "==> slmgate demo --out out/demo"
	$(BIN)/slmgate demo --out out/demo

lint: install
	@echo "==> ruff"
	$(BIN)/ruff check engine evidence runtime tests bench

test: install lint
	@echo "==> pytest"
	$(BIN)/python -m pytest -q

# JOBS workers, each with its own copy of the repository; the scores go to docs/quality.md by hand.
JOBS ?= 2
mutate: install
	@echo "==> mutation testing (tests/mutation/mutate.py, equivalents in tests/mutation/equivalent.yaml)"
	$(BIN)/python tests/mutation/mutate.py --jobs $(JOBS)

# The README's picture of a packet: page 1 of the demo's denied packet, rendered by pdftoppm
# (Debian/Ubuntu: apt-get install poppler-utils).
docs-images: install
	@command -v pdftoppm >/dev/null || { echo "==> pdftoppm missing: apt-get install poppler-utils"; exit 1; }
	$(BIN)/slmgate demo --out out/docs-demo >/dev/null
	pdftoppm -png -r 60 -f 1 -l 1 -singlefile out/docs-demo/packets/02-regressed-candidate.pdf docs/packet-page-1
	@echo "==> docs/packet-page-1.png"

clean:
	rm -rf $(VENV) out
