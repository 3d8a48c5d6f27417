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

.PHONY: venv demo test data train evaluate export quant-report benchmark middlebury clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Two test processes by default (the suite is mostly single-threaded tracing and subprocess start-up, so two
# workers use both cores); a file's tests stay on one worker so its module fixtures are built once.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15 tests

# ---- the demo: synthetic data -> train -> evaluate -> export (+ .tflite evaluated) -> int8 report -> benchmark
# ---- -> a real photo (Middlebury). What each step gave: README.md.
demo: $(STAMP)
	$(MAKE) --no-print-directory data train evaluate export quant-report benchmark middlebury

# Generated once, reused while the stamp for these counts exists (other counts: generated again).
DATA_ARGS := --train 400 --val 200 --seed 0
DATA_STAMP := $(DATA)/.complete$(subst $() ,,$(DATA_ARGS))
data: $(DATA_STAMP)
$(DATA_STAMP): $(STAMP)
	rm -f $(DATA)/.complete*
	$(PY) -m litedepth_tf.synthetic --out $(DATA) $(DATA_ARGS)
	$(PY) -m litedepth_tf.data_check --data_root $(DATA)
	touch $@

train: $(STAMP) data
	$(PY) -m litedepth_tf.train --flagfile=flags/demo.cfg

evaluate: $(STAMP)
	$(PY) -m litedepth_tf.evaluate --weights $(WEIGHTS) --data_root $(DATA) --split local_val --out $(RUN)/eval_keras.json

# fp32 / fp16 / int8 in one process (int8 calibrated on training frames through the evaluation pipeline), each
# checked against Keras.
export: $(STAMP)
	$(PY) export/export_tflite.py --weights $(WEIGHTS) --quant fp32,fp16,int8 --data_root $(DATA) \
		--out '$(ART)/litedepth_{quant}.tflite'

# fp32 vs fp16 vs int8 on the same validation images: MAI metrics, drift vs fp32, sizes, 1-thread latency; the
# files `export` wrote (checked against their model cards), not new exports. The fp32 file's metrics must match
# the Keras evaluation (`evaluate`) to 1e-3.
quant-report: $(STAMP)
	$(PY) export/export_tflite.py --weights $(WEIGHTS) --data_root $(DATA) --report_split local_val \
		--report_from $(ART) --report_dir $(ART)/quant --compare_to $(RUN)/eval_keras.json

# The student's latency is timed on the files `export` wrote; FastDepth is exported here.
benchmark: $(STAMP)
	$(PY) export/benchmark.py --weights $(WEIGHTS) --data_root $(DATA) --out $(ART)/benchmark.json \
		--tflite_dir $(ART)/benchmark --student_from $(ART)

# A real photo: Middlebury 2014 "Motorcycle" (scikit-image package data) in MAI format, scored and drawn.
middlebury: $(STAMP)
	test -f data/middlebury/middlebury.json || $(PY) -m litedepth_tf.middlebury --out data/middlebury
	$(PY) -m litedepth_tf.evaluate --weights $(WEIGHTS) --data_root data/middlebury --split local_val \
		--out $(RUN)/eval_middlebury.json
	$(PY) -m litedepth_tf.middlebury --figure $(ART)/middlebury_demo.png --weights $(WEIGHTS) --data_root data/middlebury

clean:
	rm -rf runs artifacts $(DATA) data/middlebury
