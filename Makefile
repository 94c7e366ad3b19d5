# Two commands on a fresh Debian machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := slapd ldap-utils openssl python3-venv systemd prometheus etcd-server etcd-client \
                samba samba-ad-dc samba-ad-provision winbind 389-ds-base postgresql
# Node.js and npm for SCIMMY (tests/servers/scimmy): Debian's, unless an npm is there
# already (NodeSource's nodejs bundles one and conflicts with Debian's npm package).
APT_PACKAGES += $(if $(shell command -v npm),,nodejs npm)

.PHONY: demo test test-all-pythons lint unit bench scimmy-modules json-server-modules system-packages clean

demo: $(VENV)/.installed system-packages
	$(PY) scripts/demo.py

test: $(VENV)/.installed system-packages scimmy-modules json-server-modules lint
	$(PY) -m pytest -q tests

# The same suite on every other python3.X of the machine (PATH, pyenv) that the project
# supports, each in its own .venv-3.X; DRY_RUN=1 lists what it would run.
test-all-pythons: $(VENV)/.installed system-packages scimmy-modules json-server-modules
	$(PY) scripts/all_pythons.py -q tests

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check syncd tests bench scripts
	$(VENV)/bin/ruff format --check syncd tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

bench: $(VENV)/.installed system-packages
	$(PY) bench/ldap_cycle.py

# SCIMMY, the tests' second SCIM server: its npm packages as its lock file pins them.
SCIMMY := tests/servers/scimmy
scimmy-modules: $(SCIMMY)/node_modules/.installed

$(SCIMMY)/node_modules/.installed: $(SCIMMY)/package-lock.json | system-packages
	cd $(SCIMMY) && npm ci --no-audit --no-fund
	touch $@

# json-server, the off-the-shelf REST server the HTTP source is tested against.
JSON_SERVER := tests/servers/jsonserver
json-server-modules: $(JSON_SERVER)/node_modules/.installed

$(JSON_SERVER)/node_modules/.installed: $(JSON_SERVER)/package-lock.json | system-packages
	cd $(JSON_SERVER) && npm ci --no-audit --no-fund
	touch $@

# slapd and its tools come from Debian (tests and the demo run their own throwaway
# servers on free loopback ports; PostgreSQL too, for the SQL source's tests);
# systemd-analyze checks the unit, promtool (package prometheus) the alert rules.
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
	rm -rf $(VENV) .venv-3.* .demo .pytest_cache .mypy_cache .ruff_cache $(SCIMMY)/node_modules \
	  $(JSON_SERVER)/node_modules
