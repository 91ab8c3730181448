"""How remote reads behave: the ``wsikit_*`` keys of ``storage_options``, and defaults.

``storage_options`` is one dict: the keys below tune wsikit's reads, every other key goes
to the filesystem (fsspec's, e.g. s3fs's ``key``/``secret``/``endpoint_url``; for
``http(s)://`` only ``headers`` and ``client_kwargs`` are taken, see :mod:`.http`):

- ``wsikit_timeout``: seconds one read may take in all, its retries included (default 120);
- ``wsikit_retries``: attempts after the first for 5xx answers, resets, stalls and bad
  bodies (default 4), with exponential backoff from 0.1 s;
- ``wsikit_stall``: seconds without a byte before an attempt is given up (default 30);
- ``wsikit_requests``: requests in flight at once per slide (default 16);
- ``wsikit_cache_bytes``: bytes of fetched data kept per slide: tile bytes fetched ahead and
  not yet read, and a quarter of it for header blocks (default 128 MiB);
- ``wsikit_request_bytes``: largest coalesced range request (default 8 MiB).

:func:`default_storage_options` sets options used for every URL opened without its own
(the command line's ``--storage-option``; Dask workers get them with their tasks).
"""
from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_DEFAULTS: list[dict[str, Any]] = []
_DEFAULTS_LOCK = threading.Lock()


@dataclass(frozen=True)
class RemoteSettings:
    """The ``wsikit_*`` options of one slide, checked."""

    timeout: float = 120.0
    retries: int = 4
    stall: float = 30.0
    requests: int = 16
    cache_bytes: int = 128 * 1024**2
    request_bytes: int = 8 * 1024**2
    backoff: float = 0.1


def _number(options: Mapping[str, Any], key: str, default: float, *, integer: bool, minimum: float) -> Any:
    value = options.get(key, default)
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not number >= minimum or math.isinf(number) or (integer and number != int(number)):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"storage option {key} must be {kind} of at least {minimum}, got {value!r}")
    return int(number) if integer else number


def split_options(storage_options: Mapping[str, Any] | None) -> tuple[RemoteSettings, dict[str, Any]]:
    """(wsikit's settings, the options for the filesystem) of ``storage_options``."""
    if storage_options is None:
        storage_options = current_defaults()
    if not isinstance(storage_options, Mapping):
        raise TypeError(f"storage_options must be a dict, got {type(storage_options).__name__}")
    ours = {k: v for k, v in storage_options.items() if isinstance(k, str) and k.startswith("wsikit_")}
    known = {"wsikit_timeout", "wsikit_retries", "wsikit_stall", "wsikit_requests", "wsikit_cache_bytes",
             "wsikit_request_bytes"}
    unknown = sorted(set(ours) - known)
    if unknown:
        raise TypeError(f"unknown storage option(s) {', '.join(unknown)}; wsikit's are {', '.join(sorted(known))}")
    settings = RemoteSettings(
        timeout=_number(ours, "wsikit_timeout", RemoteSettings.timeout, integer=False, minimum=0.001),
        retries=_number(ours, "wsikit_retries", RemoteSettings.retries, integer=True, minimum=0),
        stall=_number(ours, "wsikit_stall", RemoteSettings.stall, integer=False, minimum=0.001),
        requests=_number(ours, "wsikit_requests", RemoteSettings.requests, integer=True, minimum=1),
        cache_bytes=_number(ours, "wsikit_cache_bytes", RemoteSettings.cache_bytes, integer=True, minimum=0),
        request_bytes=_number(ours, "wsikit_request_bytes", RemoteSettings.request_bytes, integer=True,
                              minimum=4096),
    )
    rest = {k: v for k, v in storage_options.items() if k not in ours}
    return settings, rest


def current_defaults() -> dict[str, Any]:
    """The storage options used for URLs opened without their own."""
    with _DEFAULTS_LOCK:
        return dict(_DEFAULTS[-1]) if _DEFAULTS else {}


def defaults_for(url_protocol: str) -> dict[str, Any]:
    """The default storage options as they apply to a URL of ``url_protocol``: one set serves
    every URL of a run (``wsikit tile https://... s3://...``), so for http(s) only its own
    (``headers`` and the ``wsikit_*`` options) are kept."""
    options = current_defaults()
    if url_protocol in ("http", "https"):
        options = {k: v for k, v in options.items() if k == "headers" or k.startswith("wsikit_")}
    return options


@contextlib.contextmanager
def default_storage_options(options: Mapping[str, Any] | None) -> Iterator[None]:
    """Within the block, URLs opened without ``storage_options`` use ``options`` (process-wide:
    reader threads open nothing, but Dask tasks run on worker threads)."""
    if not options:
        yield
        return
    with _DEFAULTS_LOCK:
        _DEFAULTS.append(dict(options))
    try:
        yield
    finally:
        with _DEFAULTS_LOCK:
            _DEFAULTS.remove(dict(options))


def parse_storage_option(text: str, into: dict[str, Any]) -> None:
    """Add one command-line ``KEY=VALUE`` to ``into``: VALUE is read as JSON when it is JSON
    (numbers, true/false, objects), else kept as text; a dotted KEY nests
    (``client_kwargs.region_name=eu-west-1``, ``headers.Authorization=Bearer ...``)."""
    import json

    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        # Not echoed: a mistyped option may be a secret.
        raise ValueError("expected KEY=VALUE with a non-empty KEY (dotted keys nest: a.b=c)")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    *parents, last = key.split(".")
    target = into
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"storage option {part} is given both as a value and as a group of options")
        target = child
    target[last] = parsed


def call_with_storage_options(options: Mapping[str, Any] | None, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with ``options`` as the default storage options: how a Dask task, run in
    a worker process, opens slide URLs with the options its client was given."""
    with default_storage_options(options):
        return fn(*args)
