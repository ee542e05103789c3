# Two entry points for a fresh machine: `make serve` (the website on the shipped demo model)
# and `make test` (the whole suite). Everything installs into .venv inside the repository.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test install chromium bench screenshots demo-model

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's chromium; never `playwright install` (it downloads a browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# Install, then start: the site answers at once; gallery tiles are rendered on demand and filled in while idle.
# (`sneakergan gallery build` still pre-renders everything ahead of time for those who want it.)
serve: $(STAMP)
	$(BIN)/sneakergan serve

test: $(STAMP) chromium
	$(BIN)/python -m pytest -n 2 -q tests

# Refresh the README's screenshots (tests write theirs to a temp folder and never touch docs/).
screenshots: $(STAMP) chromium
	SNEAKERGAN_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q -p no:randomly tests/test_serve_browser.py

bench: $(STAMP)
	$(BIN)/sneakergan bench

# Reproduce (or continue, across sittings) the shipped demo model on this machine's CPUs: models/README.md.
demo-model: $(STAMP)
	scripts/demo-model.sh
