# Entry points on a fresh machine with Python 3.11:
#   make demo       sets up .venv and runs the main job on its embedded default
#   make test       sets up .venv (with the test extras) and runs the whole suite
#   make test-fast  the same without the tests marked slow
#   make benchmark  the full latency benchmark (many minutes at 100% CPU);
#                   writes benchmarks/results/latency-<date>-<cpu>.{json,md}
#   make benchmark-training  the pretraining-step and pretraining-data
#                   benchmark; writes benchmarks/results/training-<date>-<cpu>.*
#   make benchmark-distillation  teacher, distilled and scratch students on
#                   the bundled corpus (~18 min); writes
#                   benchmarks/results/distillation-<date>-<cpu>.*
#   make benchmark-squad  the demo model fine-tuned on its bundled QA set
#                   (~10 min); writes benchmarks/results/squad-<date>-<cpu>.*
#   make benchmark-quantization  float32, dynamic, post-training and QAT int8
#                   TFLite classifiers of the demo model: accuracy on its
#                   bundled sentence task, latency (~37 min); writes
#                   benchmarks/results/quantization-<date>-<cpu>.*
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
TFLITE_SUPPORT_VENV := .venv-tflite-support
MEDIAPIPE_VENV := .venv-mediapipe
CLIENT_VENVS := $(TFLITE_SUPPORT_VENV)/.done $(MEDIAPIPE_VENV)/.done
PIP := $(VENV)/bin/pip --disable-pip-version-check
# seqeval (a tf-models-official dependency) ships only a legacy sdist whose
# setup_requires breaks without PEP 517 builds. constraints.txt pins the
# resolved versions: without it pip backtracks into source builds.
PIP_INSTALL := $(PIP) install --quiet --use-pep517 --constraint constraints.txt

.PHONY: demo test test-fast benchmark benchmark-training \
	benchmark-distillation benchmark-squad benchmark-quantization clean

$(VENV)/.base: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	# tensorflow_hub 0.16.1 imports pkg_resources, gone from setuptools 81.
	$(PIP_INSTALL) "setuptools<81" wheel
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	# The CPU build of torch first, so nothing pulls a CUDA build.
	$(PIP_INSTALL) "torch==2.13.0"
	$(PIP_INSTALL) -e ".[test]" "setuptools<81"
	touch $@

# The TFLite Task Library (tflite-support 0.4.4) for export.tflite_metadata
# and the tests that run its BertQuestionAnswerer: a venv of its own, since
# it pins protobuf<4. Its native library links libusb-1.0 (Debian's
# libusb-1.0-0, installed here when missing and run as root).
$(TFLITE_SUPPORT_VENV)/.done: constraints-tflite-support.txt
	@ldconfig -p | grep -q 'libusb-1.0.so.0' || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    apt-get install -y -qq libusb-1.0-0 >/dev/null; } || \
	  { echo "tflite-support needs libusb-1.0: apt-get install libusb-1.0-0" >&2; exit 1; }
	$(PYTHON) -m venv $(TFLITE_SUPPORT_VENV)
	$(TFLITE_SUPPORT_VENV)/bin/pip --disable-pip-version-check install \
	  --quiet --constraint constraints-tflite-support.txt tflite-support
	touch $@

# MediaPipe Tasks, the on-device client of the TFLite classifier tests: a
# venv of its own, since it needs absl-py~=2.3 and tf-models-official's
# tensorflow-model-optimization pins absl-py~=1.2.
$(MEDIAPIPE_VENV)/.done: constraints-mediapipe.txt
	$(PYTHON) -m venv $(MEDIAPIPE_VENV)
	$(MEDIAPIPE_VENV)/bin/pip --disable-pip-version-check install \
	  --quiet --constraint constraints-mediapipe.txt mediapipe
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/python -m export.to_savedmodel

test: $(VENV)/.test $(CLIENT_VENVS)
	$(VENV)/bin/python -m pytest tests -q -n 2 --dist loadfile

test-fast: $(VENV)/.test $(CLIENT_VENVS)
	$(VENV)/bin/python -m pytest tests -q -n 2 --dist loadfile -m "not slow"

benchmark: $(VENV)/.test
	$(VENV)/bin/python -m benchmarks.latency

benchmark-training: $(VENV)/.test
	$(VENV)/bin/python -m benchmarks.training

benchmark-distillation: $(VENV)/.test
	$(VENV)/bin/python -m benchmarks.distillation

benchmark-squad: $(VENV)/.base
	$(VENV)/bin/python -m benchmarks.squad

benchmark-quantization: $(VENV)/.base
	$(VENV)/bin/python -m benchmarks.quantization

clean:
	rm -rf $(VENV) $(TFLITE_SUPPORT_VENV) $(MEDIAPIPE_VENV) build
