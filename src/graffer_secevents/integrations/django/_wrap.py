"""Wrapping a third-party method once, for the auth-stack adapters whose stacks send no signal."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

__all__ = ["wrap_method"]

_WRAPPED: Final = "_secevents_wrapped"


def wrap_method(owner: object, name: str, make: Callable[[Any], Callable[..., Any]]) -> None:
    """Replace `owner.name` by `make(original)` (keeping its name and docstring), once per process.

    `owner` is a class, or a module whose function callers look up at call time (a view module the URLconf
    imports later). Subclasses that call `super()` reach the wrapper; a subclass that overrides the method
    without calling it is not recorded (docs/integrations/drf.md says so).
    """
    original = owner.__dict__[name]
    if getattr(original, _WRAPPED, False):
        return
    wrapper = functools.wraps(original)(make(original))
    setattr(wrapper, _WRAPPED, True)
    setattr(owner, name, wrapper)
