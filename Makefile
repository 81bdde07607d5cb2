# The two commands of the README: `make book` and `make test`. Both create the virtual
# environment from requirements.lock on first use, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
WORKERS ?= 2

# The book's labs run on the simulated workspace, in a workspace folder of the build's own.
export LABKIT_BACKEND := simulated
export LABKIT_SIM_ROOT := $(CURDIR)/_build/sim-workspaces
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: book test test-fast labs lab bench serve lock clean

# A changed lock rebuilds the environment from scratch, so it holds exactly what the lock says.
$(INSTALLED): requirements.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --config-settings editable_mode=compat -e .
	$(PY) -m pip check
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(INSTALLED)

book: $(INSTALLED)
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# The student edition: the same pages with every exercise's solution left out, into
# _build/student/html (scripts/build_student.py). It reuses the book's execution cache, so
# after `make book` it executes nothing again.
.PHONY: student
student: $(INSTALLED)
	$(PY) scripts/build_student.py --warningiserror --nitpick --keep-going

# Two pytest workers: the labs and the book build (one module, sharing each lab's execution)
# on one, the unit tests on the other (tests/test_labs.py).
test: $(INSTALLED)
	$(PY) -m pytest -n 2 --dist loadfile

# A developer's quick loop: everything but the lab executions and the book build.
test-fast: $(INSTALLED)
	$(PY) -m pytest -n 2 -m "not lab and not book"

# Run every lab (or one: make lab LAB=intro) through the lab runner, with its report.
labs: $(INSTALLED)
	$(PY) scripts/run_labs.py --workers $(WORKERS)

lab: $(INSTALLED)
	$(PY) scripts/run_labs.py $(LAB)

# Performance measurements (ratios against a baseline run side by side); not part of make test.
bench: $(INSTALLED)
	$(PY) benchmarks/bench_sim_assets.py
	$(PY) benchmarks/bench_jobs.py
	$(PY) benchmarks/bench_automl.py
	$(PY) benchmarks/bench_online_endpoints.py
	$(PY) benchmarks/bench_labs.py --suite
	$(PY) benchmarks/results.py

# Every external link of the book (needs the network; CI runs it weekly). Sphinx's linkcheck
# builder through Jupyter Book's "custom" builder, so the report lands in _build/linkcheck/
# (output.txt, output.json), not in the site, and the labs' execution cache is the book's.
.PHONY: linkcheck
linkcheck: $(INSTALLED)
	$(VENV)/bin/jupyter-book build . --builder custom --custom-builder linkcheck

serve: $(INSTALLED)
	$(PY) -m http.server --bind 127.0.0.1 --directory _build/html 8000

lock:
	bash scripts/lock.sh

clean:
	rm -rf _build
