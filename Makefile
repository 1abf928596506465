# Kiln: `make demo` builds the example golden image; `make test` runs the whole suite.
# Both install what they need (Debian packages with apt-get, Python packages into .venv/) and are
# idempotent: a second run only checks.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
KILN := $(VENV)/bin/kiln
DEB_PACKAGES := mmdebstrap apt-utils bubblewrap skopeo docker-registry umoci qemu-utils qemu-system-x86 ovmf \
	openscap-scanner ssg-debian e2fsprogs dosfstools mtools fdisk systemd-boot-efi extlinux \
	syslinux syslinux-common debian-archive-keyring ca-certificates git postgresql diffoscope-minimal \
	passt python3-seccomp chromium curl jq
STAMP_DEB := $(VENV)/.deb-packages
STAMP_PY := $(VENV)/.py-packages

.PHONY: demo test lint typecheck unit e2e deps clean bench openapi

deps: $(STAMP_DEB) $(STAMP_PY)

$(STAMP_DEB): Makefile
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

$(STAMP_PY): pyproject.toml $(STAMP_DEB)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

demo: deps
	$(KILN) build examples/recipes/debian-web.yaml

lint: deps
	$(VENV)/bin/ruff check kiln tests bench
	$(VENV)/bin/ruff format --check kiln tests bench

typecheck: deps
	$(VENV)/bin/mypy

test: deps lint typecheck
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

unit: deps
	$(VENV)/bin/pytest -q -m 'not e2e' $(PYTEST_ARGS)

bench: deps
	$(PY) bench/build.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# The committed OpenAPI document (tests/api/test_openapi.py fails when it differs from the code).
openapi: deps
	$(PY) -m kiln.api.openapi > docs/openapi.json
