"""Strict JSON for job arguments: a value JSON cannot carry exactly (a datetime, bytes,
a set, NaN, a non-string mapping key) is an error naming the argument, never silently
converted (json.dumps would turn {1: "a"} into {"1": "a"}). Tuples become lists, as in
every JSON job queue."""

from __future__ import annotations

import math
from typing import Any

_SCALARS = (str, int, bool, type(None))


def _problem(value: Any) -> str | None:
    """Why a non-container value is not JSON, or None if it is fine."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} (JSON has no NaN or infinity)"
    if isinstance(value, _SCALARS):
        return None
    return f"a {type(value).__name__} value"


def find_unjsonable(value: Any, path: str, depth: int = 0) -> str | None:
    """The first place in `value` JSON cannot carry, as `path: why`, or None."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return None
    if depth > 200:
        return f"{path}: nested more than 200 levels deep"
    if t is list or t is tuple:
        for i, item in enumerate(value):
            found = find_unjsonable(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
        return None
    if t is dict:
        for key, item in value.items():
            if type(key) is not str:
                return f"{path}: mapping key {key!r} is not a string"
            found = find_unjsonable(item, f"{path}[{key!r}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple, dict)) and not isinstance(value, str):
        return f"{path}: a {t.__name__} (a subclass JSON would not round-trip)"
    problem = _problem(value)
    return f"{path}: {problem}" if problem else None


def _plain(value: Any, depth: int = 0) -> bool:
    """Fast yes/no pass (no paths built): the common case is all plain."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)
    if depth > 200:
        return False
    if t is list or t is tuple:
        for v in value:
            tv = type(v)
            if not (tv is str or tv is int or tv is bool or _plain(v, depth + 1)):
                return False
        return True
    if t is dict:
        for k, v in value.items():
            tv = type(v)
            if type(k) is not str or not (tv is str or tv is int or _plain(v, depth + 1)):
                return False
        return True
    return False


def check_arguments(task: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise TypeError naming the first argument JSON cannot carry exactly."""
    if _plain(args) and _plain(kwargs):
        return
    found = find_unjsonable(list(args), "args") or find_unjsonable(kwargs, "kwargs")
    if not found:
        return
    raise TypeError(
        f"cannot enqueue {task}: {found}, which JSON cannot carry; pass plain JSON values "
        "(str, int, float, bool, None, list, dict with string keys) or convert it "
        "yourself (e.g. a datetime to .isoformat())"
    )
