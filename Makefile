# Two commands run the course: `make book` builds the book, `make test` runs the tests.
# Both first bring the virtual environment .venv up to date (.ci/setup_venv.py; a no-op once installed):
# `make book` installs only what builds the book, `make test` adds the course, its tests and PyTorch
# (the CPU build on a Linux machine without an NVIDIA GPU).

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
SETUP  := $(PYTHON) .ci/setup_venv.py --venv $(VENV)
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k attention"`.
PYTEST_ARGS ?=
# chapters/ is tested once it exists (pytest stops at a path that does not).
TEST_PATHS := tests $(wildcard chapters)
# Two workers share the two cores, one thread each: a worker with two threads on a busy core spends most of
# its time waiting for the other. A line marks each chapter's start and end (tests/conftest.py).
PYTEST := HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(VPY) -m pytest -n 2 --dist loadscope

.PHONY: book translations test test-fast student clean

# Renders the committed notebooks and their outputs into _build/html; executes nothing.
book:
	@$(SETUP) book
	$(VENV)/bin/jupyter-book build . -W --keep-going
	$(VPY) book/build_zh.py
	@echo "Open _build/html/index.html (English) or _build/html/zh/index.html (Chinese) in a browser."

# After editing a chapter or a page: extract its strings again and bring locales/zh_CN up to date (new strings
# untranslated, changed ones marked fuzzy); then translate them in locales/zh_CN/LC_MESSAGES/*.po.
translations:
	@$(SETUP) book
	rm -rf _build/gettext _build/.doctrees-gettext
	$(VENV)/bin/jupyter-book config sphinx . > /dev/null
	$(VENV)/bin/sphinx-build -q -b gettext . _build/gettext -d _build/.doctrees-gettext; status=$$?; rm -f conf.py; exit $$status
	$(VENV)/bin/sphinx-intl update -p _build/gettext -l zh_CN -d locales

# Unit tests of vitlib, repository checks, and every chapter re-run with nbval.
test:
	@$(SETUP) test
	$(PYTEST) --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--durations=15 $(TEST_PATHS) $(PYTEST_ARGS)

# For development: the unit tests without the slow ones (training runs, chapters, benchmarks), in under a minute.
test-fast:
	@$(SETUP) test
	$(PYTEST) -m "not slow" tests $(PYTEST_ARGS)

# A student edition of every chapter in student/: solutions replaced by a stub, exercise outputs cleared
# (the instructor guide, "Classroom").
student:
	@$(SETUP) test
	$(VPY) -m vitlib.classroom student --out student

clean:
	rm -rf _build .pytest_cache $(VENV)
