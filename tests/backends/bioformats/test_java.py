"""The process's one JVM: never started by importing wsikit or reading a native format,
and a missing jar or a bad heap setting say what to do."""
from __future__ import annotations

import subprocess
import sys

import pytest

from wsikit.backends.bioformats import java
from wsikit.errors import BackendUnavailableError


def test_importing_and_reading_tiff_start_no_jvm(sample_svs):
    code = ("import sys, wsikit, jpype; s = wsikit.open_slide(sys.argv[1]); s.extract_region((0, 0), (8, 8)); "
            "print(type(s).__name__, jpype.isJVMStarted())")
    out = subprocess.run([sys.executable, "-c", code, sample_svs], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["TiffBackend", "False"]


def test_missing_jar_and_bad_heap_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("WSIKIT_BIOFORMATS_JAR", str(tmp_path / "nowhere.jar"))
    with pytest.raises(BackendUnavailableError, match="WSIKIT_BIOFORMATS_JAR"):
        java.bioformats_jar()
    monkeypatch.setenv("WSIKIT_JVM_HEAP", "lots")
    with pytest.raises(BackendUnavailableError, match="WSIKIT_JVM_HEAP"):
        java.jvm_heap()
    monkeypatch.setenv("WSIKIT_JVM_HEAP", "512m")
    assert java.jvm_heap() == "512m"
    monkeypatch.delenv("WSIKIT_JVM_HEAP")
    assert java.jvm_heap() == "2g"


def test_javabridge_is_not_needed():
    out = subprocess.run([sys.executable, "-c", "import javabridge"], capture_output=True, timeout=60, check=False)
    assert out.returncode != 0
