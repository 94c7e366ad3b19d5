# Two commands on a fresh Debian machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := slapd ldap-utils openssl python3-venv systemd prometheus \
                samba samba-ad-dc samba-ad-provision winbind

.PHONY: demo test lint unit bench system-packages clean

demo: $(VENV)/.installed system-packages
	$(PY) scripts/demo.py

test: $(VENV)/.installed system-packages lint
	$(PY) -m pytest -q tests

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check syncd tests bench scripts
	$(VENV)/bin/ruff format --check syncd tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

bench: $(VENV)/.installed system-packages
	$(PY) bench/ldap_cycle.py

# slapd and its tools come from Debian (tests and the demo run their own throwaway
# servers on free loopback ports); systemd-analyze checks the unit, promtool (package
# prometheus) the alert rules.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
