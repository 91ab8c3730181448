"""Checks of caller arguments: each returns the value in canonical form or raises a
TypeError / ValueError that names the argument and the value given."""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np

#: What callers may give for a size, shape, stride or location: one int for both axes,
#: or an (i, j) pair of ints (a tuple, a list or a 2-element array).
IntOrPair: TypeAlias = "int | tuple[int, int] | Sequence[int] | np.ndarray"
#: The same for real numbers (microns per pixel, magnifications).
RealOrPair: TypeAlias = "float | tuple[float, float] | Sequence[float] | np.ndarray"


def as_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """``value`` as a Python int, or TypeError/ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_pair(value: object, name: str, *, minimum: int | None = None) -> tuple[int, int]:
    """An int or a pair of ints as an (i, j) tuple of Python ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        v = as_int(value, name, minimum=minimum)
        return v, v
    if isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2:
        return (as_int(value[0], f"{name}[0]", minimum=minimum), as_int(value[1], f"{name}[1]", minimum=minimum))
    raise TypeError(f"{name} must be an int or a pair (i, j) of ints, got {value!r}")


def positive_number(value: object, name: str) -> float:
    """A positive finite real number as a float, or TypeError/ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    number = float(value)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"{name} must be a positive number, got {number}")
    return number


def positive_pair(value: object, name: str) -> tuple[float, float]:
    """A positive number or an (i, j) pair of them, as an (i, j) tuple of floats."""
    if isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2:
        return positive_number(value[0], f"{name}[0]"), positive_number(value[1], f"{name}[1]")
    number = positive_number(value, name)
    return number, number


def fraction_or_none(value: object, name: str) -> float | None:
    """None, or a number in [0, 1] as a float."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1] or None, got {value!r}")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {number}")
    return number
