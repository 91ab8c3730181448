"""Checks of the options a caller passes to a backend: a backend's options are the keyword
parameters of its ``_open`` (when opening) and of its ``_read_region`` after (level, i, j,
h, w) (when reading); any other option is refused with a TypeError naming it."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable


def keyword_parameters(function: Callable[..., Any], skip: int) -> tuple[set[str], bool]:
    """(names of the keyword parameters of ``function`` after its first ``skip`` parameters,
    whether it also takes any keyword)."""
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    names = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return names, any(p.kind is p.VAR_KEYWORD for p in parameters)


def refuse_unknown_options(cls: type, given: Iterable[str], function: Callable[..., Any], *, skip: int,
                           where: str = "") -> None:
    """TypeError when ``given`` holds a name that is not a keyword parameter of ``function``
    (a function that takes any keyword checks its options itself)."""
    names, any_keyword = keyword_parameters(function, skip)
    unknown = [name for name in given if name not in names]
    if unknown and not any_keyword:
        raise TypeError(f"unexpected options for {cls.__name__}{where}: {', '.join(unknown)}")


def check_errors(errors: object) -> None:
    """The ``errors=`` argument of a tiling: "raise" or "skip"."""
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
