"""The child process of :mod:`fuzz.sandbox`: runs cases one by one under a memory limit.

Usage (by the sandbox, not by hand): ``python fuzz/worker.py ADDRESS_SPACE_BYTES``.
Cases arrive as JSON lines on stdin; for each, one JSON line goes back on the original
stdout (libraries that print are sent to stderr so they cannot break the protocol).
"""
from __future__ import annotations

import faulthandler
import json
import os
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    limit = int(sys.argv[1])
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    faulthandler.enable()
    # The sandbox sends SIGUSR1 before killing a worker that ran out of time: every
    # thread's stack then shows where it hung.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Everything the cases need is imported before the limit so the limit measures reads.
    import wsikit  # noqa: F401
    from fuzz.target import exercise
    from wsikit.backends import backend_class_or_none
    from wsikit.backends import backend_names

    for name in backend_names():
        backend_class_or_none(name)
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    protocol.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        case = json.loads(line)
        result = exercise(case["path"], case.get("backend"), case.get("tile_shapes"), case.get("max_tiles", 400))
        result["id"] = case["id"]
        protocol.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
