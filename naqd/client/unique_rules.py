"""The rules of unique jobs, pure (docs/job-control.md#unique-jobs): the modes, a key
and its lock's name, how long a lock lives, and what a second enqueue does to a waiting
debounced job. naqd/client/unique.py applies them to the `naqd_unique` bucket."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, get_args

DEFAULT_UNIQUE_FOR = 3600.0  # when only unique_key is given

UniqueMode = Literal["until_done", "throttle", "debounce", "latest"]
MODES: tuple[str, ...] = get_args(UniqueMode)
DELAYED_MODES = ("debounce", "latest")  # the job waits as a delayed job
# A waiting job that starts sooner than this is left alone: replacing it could race the
# server firing it (it fires on whole seconds); the enqueue makes a new job instead.
REPLACE_GUARD = 1.0
LOCK_MARGIN = 5.0  # a waiting job's lock outlives its start by this much


def unique_mode(mode: str | None) -> UniqueMode:
    if mode is None:
        return "until_done"
    if mode not in MODES:
        raise ValueError(f"unique_mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode  # type: ignore[return-value]


def lock_ttl(mode: UniqueMode, window: float, delay: float = 0.0) -> float:
    """How long the lock may live, whole seconds (the server's TTL resolution)."""
    if mode in DELAYED_MODES:
        return float(math.ceil(window + LOCK_MARGIN))
    return float(max(1, math.ceil(window + max(0.0, delay))))


def next_start(mode: UniqueMode, now: float, run_at: float, window: float) -> float | None:
    """A waiting job's new start when another enqueue with its key comes at `now`, or
    None when it starts too soon to be replaced (the enqueue makes a new job)."""
    if run_at - now <= REPLACE_GUARD:
        return None
    return now + window if mode == "debounce" else run_at


@dataclass(frozen=True)
class UniqueSpec:
    """A unique job's key, window (seconds) and mode, as the message was shaped."""

    key: str
    window: float
    mode: UniqueMode


@dataclass(frozen=True)
class Claim:
    """What the enqueue does after claiming a key: `job_id` is the job the caller gets,
    `created` whether it is a new one. `release`: the lock the worker frees when the job
    ends (until_done). `run_at` (epoch seconds) and `holder_id` (its Nats-Msg-Id): a
    waiting job to publish, new or replacing the waiting one; None: publish nothing."""

    job_id: str
    created: bool
    release: str | None = None
    run_at: float | None = None
    holder_id: str | None = None


def unique_window(unique_for: float | timedelta | None) -> float:
    """Seconds the lock may live at most, whole (the server's TTL resolution), >= 1."""
    if unique_for is None:
        return DEFAULT_UNIQUE_FOR
    seconds = unique_for.total_seconds() if isinstance(unique_for, timedelta) else unique_for
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"unique_for must be a positive duration, got {unique_for!r}")
    return float(max(1, math.ceil(seconds)))


def unique_key_of(
    task: str, queue: str, args: tuple[Any, ...], kwargs: dict[str, Any], unique_key: str | None
) -> str:
    """The caller's key, or one derived from task, queue and arguments (as Sidekiq does)."""
    if unique_key is not None:
        if not isinstance(unique_key, str) or not unique_key:
            raise ValueError(f"unique_key must be a non-empty string, got {unique_key!r}")
        return unique_key
    try:
        body = json.dumps([task, queue, list(args), kwargs], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"cannot derive a unique key from arguments that are not JSON ({exc}): pass unique_key="
        ) from None
    return f"{queue}:{task}:{body}"


def lock_key(key: str) -> str:
    """KV keys allow few characters: any user key maps to a fixed-size hash."""
    return hashlib.sha256(key.encode()).hexdigest()
