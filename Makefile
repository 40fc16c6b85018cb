# The two commands of the README. Both create .venv when it is missing and install the pinned
# stack once; the stamp makes later runs start at once.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.facerec-installed
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: demo test install clean

# With ../shared present, the demo runs the shipped model on LFW photos (YuNet alignment); with
# nothing but the clone it trains and forgets on synthetic identities, offline.
SHARED ?= ../shared
DEMO_DATA := $(wildcard $(SHARED)/data/lfw/images)
YUNET := $(wildcard $(SHARED)/models/face_detection_yunet_2023mar.onnx)

demo: $(STAMP)
	$(VENV)/bin/facerec demo $(if $(DEMO_DATA),--data $(DEMO_DATA) $(if $(YUNET),--detector yunet:$(YUNET)))

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
