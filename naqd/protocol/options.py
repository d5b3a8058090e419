"""Per-job retry options as they travel in the envelope: plain JSON, checked here so a
producer's mistake fails at enqueue and a worker never trusts what it reads."""

from __future__ import annotations

import re
from typing import Any

STRATEGIES = ("exponential", "linear", "fixed")
_EXC_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"backoff {what}: expected seconds (a number >= 0), got {value!r}")
    return float(value)


def check_backoff(raw: Any) -> Any:
    """A list of delays in seconds, or {strategy, base, max, jitter}; returns it as JSON."""
    if raw is None:
        return None
    if isinstance(raw, list | tuple):
        if not raw:
            raise ValueError("backoff: expected at least one delay")
        return [_seconds(d, "delay") for d in raw]
    if not isinstance(raw, dict):
        raise ValueError(f"backoff: expected a mapping or a list of delays, got {raw!r}")
    unknown = set(raw) - {"strategy", "base", "max", "jitter"}
    if unknown:
        raise ValueError(f"backoff: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    out: dict[str, Any] = {}
    if "strategy" in raw:
        if raw["strategy"] not in STRATEGIES:
            raise ValueError(f"backoff strategy: expected one of {', '.join(STRATEGIES)}")
        out["strategy"] = raw["strategy"]
    for key in ("base", "max"):
        if key in raw:
            out[key] = _seconds(raw[key], key)
    if "jitter" in raw:
        jitter = _seconds(raw["jitter"], "jitter")
        if jitter > 1:
            raise ValueError(f"backoff jitter: expected a number from 0 to 1, got {jitter!r}")
        out["jitter"] = jitter
    return out


def exception_names(raw: Any) -> tuple[str, ...] | None:
    """Exception classes or names (`ValueError`, `pkg.mod.Error`) -> names."""
    if raw is None:
        return None
    if isinstance(raw, str | type):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        raise ValueError(f"expected a list of exception names, got {raw!r}")
    names = []
    for item in raw:
        if isinstance(item, type):
            builtin = item.__module__ == "builtins"
            item = item.__name__ if builtin else f"{item.__module__}.{item.__qualname__}"
        if not isinstance(item, str) or not _EXC_NAME.match(item):
            raise ValueError(f"expected an exception class name, got {item!r}")
        names.append(item)
    return tuple(names)
