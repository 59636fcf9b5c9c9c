# The two set-up commands (see README.md): `make run` serves the demo, `make test` runs the tests.
# Both create .venv if it is missing and reinstall the requirements only when a requirements file
# is newer than the stamp left by the last install, so repeat runs start at once.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
PORT ?= 8000
ARGS ?=

.PHONY: run test

run: $(VENV)/.installed-run
	$(VENV_PYTHON) manage.py migrate
	$(VENV_PYTHON) manage.py load_demo --url http://127.0.0.1:$(PORT)/
	$(VENV_PYTHON) manage.py runserver 127.0.0.1:$(PORT)

test: $(VENV)/.installed-test
	scripts/test.sh $(ARGS)

# A half-made venv (Debian without python3-venv stops after creating bin/python) is removed, so
# the next run tries again instead of finding a python without pip.
$(VENV_PYTHON):
	@test -n "$(PYTHON)" || { echo "No python3.11 or python3 on PATH." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "Creating $(VENV) failed; on Debian: apt-get install python3-venv" >&2; exit 1; }

$(VENV)/.installed-run: requirements.txt | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@
