# Two entry points for a fresh machine: `make serve` (the website on the shipped demo model)
# and `make test` (the whole suite). Everything installs into .venv inside the repository.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test install chromium bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's chromium; never `playwright install` (it downloads a browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# The gallery is pre-rendered once (WebP beside the model; later runs skip what exists), then the site starts.
serve: $(STAMP)
	$(BIN)/sneakergan gallery build --count 10000
	$(BIN)/sneakergan serve

test: $(STAMP) chromium
	$(BIN)/python -m pytest -n 2 -q tests

bench: $(STAMP)
	$(BIN)/sneakergan bench
