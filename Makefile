# litedepth_tf: `make demo` runs the main job end to end, `make test` runs the test suite.
# Each demo step is a plain command you can run yourself (see README.md).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   := data/synthetic
RUN    := runs/demo
ART    := artifacts
WEIGHTS := $(RUN)/best.weights.h5
export TF_CPP_MIN_LOG_LEVEL := 2
export TF_ENABLE_ONEDNN_OPTS := 0
export PYTHONPATH := $(CURDIR)

.PHONY: venv demo test data train evaluate export benchmark clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# ---- the demo: synthetic data -> train -> evaluate -> export -> evaluate .tflite -> benchmark ----
demo: $(STAMP)
	$(MAKE) --no-print-directory data train evaluate export benchmark

# Generated once, reused while $(DATA)/.complete exists.
data: $(DATA)/.complete
$(DATA)/.complete: $(STAMP)
	$(PY) -m litedepth_tf.data.synthetic --out $(DATA) --train 400 --val 40 --seed 0
	$(PY) -m litedepth_tf.data_check $(DATA)
	touch $@

train: $(STAMP) data
	$(PY) -m litedepth_tf.train --flagfile=flags/demo.cfg

evaluate: $(STAMP)
	$(PY) -m litedepth_tf.evaluate --weights $(WEIGHTS) --data_root $(DATA) --split local_val --out $(RUN)/eval_keras.json

export: $(STAMP)
	$(PY) export/export_tflite.py --weights $(WEIGHTS) --quant fp32 --out $(ART)/litedepth_fp32.tflite
	$(PY) export/export_tflite.py --weights $(WEIGHTS) --quant fp16 --out $(ART)/litedepth_fp16.tflite
	$(PY) -m litedepth_tf.evaluate --tflite $(ART)/litedepth_fp32.tflite --data_root $(DATA) --split local_val --out $(RUN)/eval_tflite_fp32.json

benchmark: $(STAMP)
	$(PY) export/benchmark.py --weights $(WEIGHTS) --out $(ART)/benchmark.json --tflite_dir $(ART)/benchmark

clean:
	rm -rf runs artifacts $(DATA)
