"""Unique jobs (docs/job-control.md): a second enqueue with the same unique key, while
the first job is queued or running, returns the first job. The lock is a KV `create`
with a per-key TTL (`unique_for`) in the bucket `naqd_unique`; the worker deletes it when
the job ends."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from nats.errors import NoRespondersError
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    ServiceUnavailableError,
)

from naqd.client.errors import NaqdError
from naqd.client.readiness import NotInitialized, missing_streams
from naqd.protocol.names import UNIQUE_BUCKET

DEFAULT_UNIQUE_FOR = 3600.0  # when only unique_key is given


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


async def acquire(
    js: Any,
    key: str,
    job_id: str,
    ttl: float,
    finished: Callable[[str], Awaitable[bool]] | None = None,
) -> str:
    """The job id that owns `key`: ours when we took the lock, else the holder's. A holder
    that `finished` says has ended no longer owns the key, even if its worker has not
    deleted the lock yet (it does so after the done notice and the ack, or never if it
    died in between): the lock is taken over, compare-and-delete first."""
    try:
        kv = await js.key_value(UNIQUE_BUCKET)
    except (NoRespondersError, ServiceUnavailableError):
        # No JetStream at all says so; anything else (a leader election) is "not stored".
        missing = await missing_streams(js)
        if missing is None:
            raise
        raise missing from None
    except BucketNotFoundError:
        raise NotInitialized(
            "the naqd_unique bucket does not exist yet: start a naqd daemon once, or run "
            "`naqd init --config naq.yaml`"
        ) from None
    lock = lock_key(key)
    value = json.dumps({"job_id": job_id, "key": key}).encode()
    for _ in range(10):
        try:
            await kv.create(lock, value, msg_ttl=ttl)
            return job_id
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await kv.get(lock)
        except KeyNotFoundError:  # released or expired meanwhile: try again
            continue
        if entry.value:
            holder = json.loads(entry.value).get("job_id")
            if isinstance(holder, str) and holder:
                if finished is None or not await finished(holder):
                    return holder
                with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError):
                    await kv.delete(lock, last=entry.revision)
    raise NaqdError(f"unique key {key!r} is contended; try again")


async def release(js: Any, lock: str, job_id: str) -> bool:
    """Delete the lock if `job_id` still holds it (a compare-and-delete)."""
    kv = await js.key_value(UNIQUE_BUCKET)
    try:
        entry = await kv.get(lock)
    except KeyNotFoundError:
        return False
    if not entry.value or json.loads(entry.value).get("job_id") != job_id:
        return False
    try:
        await kv.delete(lock, last=entry.revision)
    except KeyWrongLastSequenceError:
        return False
    return True
