# The two commands of the README. Both create .venv when it is missing and install the pinned
# stack once; the stamp makes later runs start at once.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.facerec-installed
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: demo test install clean

demo: $(STAMP)
	$(VENV)/bin/facerec demo

test: $(STAMP)
	$(PY) -m pytest -q

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[dev]'
	$(PIP) install --no-deps insightface==2.1
	touch $(STAMP)

clean:
	rm -rf $(VENV) facerec-workspace .pytest_cache
