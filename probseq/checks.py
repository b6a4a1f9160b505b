"""Argument checks shared by every layer (one implementation, one wording)."""

from __future__ import annotations

import numpy as np

__all__ = ["NotAnIntegerError", "check_positive_int"]


class NotAnIntegerError(TypeError, ValueError):
    """A size that is not an integer (a float, a bool, a string): a wrong type and a wrong
    value at once, so code catching either sees it."""


def check_positive_int(name: str, value) -> int:
    """`value` as an int if it is an integer >= 1 (numpy integers too; not a bool).

    Raises:
      NotAnIntegerError: not an integer (a `TypeError` and a `ValueError`).
      ValueError: an integer < 1.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise NotAnIntegerError(f"{name} must be a positive integer, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
