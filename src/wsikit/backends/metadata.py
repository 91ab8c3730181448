"""The rules every backend follows for slide metadata.

A backend fills ``_mpp`` and ``_objective_power`` from its format's own fields (parsed with
:func:`positive_float`); the base class then writes them once, in the same form for every
format, as the ``wsikit.*`` properties below.
"""
from __future__ import annotations

import math
from collections.abc import MutableMapping

MPP_Y = "wsikit.mpp-y"
MPP_X = "wsikit.mpp-x"
OBJECTIVE_POWER = "wsikit.objective-power"


def positive_float(value: object) -> float | None:
    """A metadata value (text, number or Java Number) as a positive finite float, else None.

    A missing, zero, negative or unparsable value means "the file does not say".
    """
    try:
        number = float(value.doubleValue()) if hasattr(value, "doubleValue") else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number > 0 and math.isfinite(number) else None


def write_resolution(properties: MutableMapping[str, str], mpp: tuple[float, float] | None,
                     objective_power: float | None) -> None:
    """Record a slide's (i, j) microns per pixel and objective power as ``wsikit.*`` properties."""
    if mpp is not None:
        properties[MPP_Y], properties[MPP_X] = repr(float(mpp[0])), repr(float(mpp[1]))
    if objective_power is not None:
        properties[OBJECTIVE_POWER] = repr(float(objective_power))
