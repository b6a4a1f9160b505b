# probseq: two commands do all set-up.
#   make demo   -> creates .venv if missing, runs the Shakespeare char-LM main job
#   make test   -> creates .venv if missing, runs the whole test suite (incl. slow tests)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench forecast-bench lock clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) experiments/shakespeare_char_rnn.py $(ARGS)

test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q -n 2 $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[bench]"
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) benchmarks/run.py --max-rounds 4 $(ARGS)

# The forecasting benchmark with its GluonTS peer, in its own venv (GluonTS needs pandas < 3).
FC_VENV := .venv-forecast
forecast-bench:
	test -x $(FC_VENV)/bin/python || $(PYTHON) -m venv $(FC_VENV)
	$(FC_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(FC_VENV)/bin/python -m pip install --quiet -e ".[forecast-bench]"
	TF_CPP_MIN_LOG_LEVEL=3 $(FC_VENV)/bin/python experiments/forecast_benchmark.py $(ARGS)

lock:
	$(PY) -m pip freeze --exclude-editable | sed '/^torch==/d' > constraints.txt

clean-venv:
	rm -rf $(VENV)
