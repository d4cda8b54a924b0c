# Two commands run the course: `make book` builds the book, `make test` runs the tests.
# Both first set up a virtual environment in .venv (once, and again when the dependencies change).

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k attention"`.
PYTEST_ARGS ?=
# chapters/ is tested once it exists (pytest stops at a path that does not).
TEST_PATHS := tests $(wildcard chapters)

.PHONY: book test clean

# --system-site-packages keeps a torch that is already installed (Colab's CUDA build, say);
# torch==2.13.0 is installed only when no torch can be imported.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install torch==2.13.0
	$(VPY) -m pip install -r requirements.txt -e .
	touch $(STAMP)

# Renders the committed notebooks and their outputs into _build/html; executes nothing.
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W --keep-going
	@echo "Open _build/html/index.html in a browser."

# Unit tests of vitlib, repository checks, and every chapter re-run with nbval. Two workers share the two cores,
# one thread each: a worker with two threads on a busy core spends most of its time waiting for the other.
test: $(STAMP)
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(VPY) -m pytest -n 2 --dist loadscope --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --durations=15 $(TEST_PATHS) $(PYTEST_ARGS)

clean:
	rm -rf _build .pytest_cache $(VENV)
