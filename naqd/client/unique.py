"""Unique jobs (docs/job-control.md#unique-jobs). One lock per key in the bucket
`naqd_unique` (a KV `create` with a per-key TTL), and four modes of what a second
enqueue with the same key gets:

- `until_done` (the default): the first job while it is queued or running; the worker
  deletes the lock when the job ends; `unique_for` bounds the lock's life.
- `throttle`: the first job for `unique_for` seconds from its enqueue, even after it
  finished; nobody deletes the lock, its TTL ends the window.
- `debounce`: the job waits `unique_for` seconds as a delayed job; an enqueue while it
  waits replaces its arguments and restarts the wait (the holder is re-published under
  the same subject, which the server's one-schedule-per-subject rule replaces).
- `latest`: as debounce, but the wait is not restarted: the job starts `unique_for`
  after the first enqueue, with the arguments of the last.

A delayed `until_done` or `throttle` job holds its lock for its delay plus `unique_for`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.errors import NoRespondersError
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    ServiceUnavailableError,
)

from naqd.client.errors import NaqdError
from naqd.client.readiness import NotInitialized, missing_streams
from naqd.client.unique_rules import (
    DELAYED_MODES,
    LOCK_MARGIN,
    Claim,
    UniqueMode,
    lock_key,
    lock_ttl,
    next_start,
)
from naqd.protocol.known_queues import lost_compare_and_set
from naqd.protocol.names import (
    HDR_EXPECTED_LAST_SUBJECT_SEQ,
    HDR_TTL,
    UNIQUE_BUCKET,
    holder_msg_id,
    kv_subject,
)

CONTENDED = 200  # compare-and-set rounds before giving up (one enqueue wins each)


async def _bucket(js: Any) -> Any:
    try:
        return await js.key_value(UNIQUE_BUCKET)
    except (NoRespondersError, ServiceUnavailableError):
        # No JetStream at all says so; anything else (a leader election) is "not stored".
        missing = await missing_streams(js)
        if missing is None:
            raise
        raise missing from None
    except BucketNotFoundError:
        raise NotInitialized(
            "the naqd_unique bucket does not exist yet: start a naqd daemon once, run "
            "`naqd init --config naq.yaml`, or in tests naqd.testing.prepare(url)"
        ) from None


async def claim(
    js: Any,
    key: str,
    job_id: str,
    *,
    mode: UniqueMode,
    window: float,
    queue: str,
    delay: float = 0.0,
    finished: Callable[[str], Awaitable[bool]] | None = None,
) -> Claim:
    """Take `key` for `job_id`, or find who has it, as `mode` says (module docstring)."""
    if mode in DELAYED_MODES:
        return await _claim_waiting(js, key, job_id, mode, window, queue, finished)
    ttl = lock_ttl(mode, window, delay)
    # A throttle's window runs to its end: a finished holder still owns the key.
    owner = await acquire(js, key, job_id, ttl, finished if mode == "until_done" else None)
    created = owner == job_id
    release = lock_key(key) if created and mode == "until_done" else None
    return Claim(owner, created, release=release)


async def _claim_waiting(
    js: Any,
    key: str,
    job_id: str,
    mode: UniqueMode,
    window: float,
    queue: str,
    finished: Callable[[str], Awaitable[bool]] | None,
) -> Claim:
    """The waiting job is judged by the lock alone (its start still ahead), not by its
    holder in the stream: a racing enqueue may hold the lock and not have published its
    holder yet. A waiting job that was cancelled has a final record: not replaced."""
    kv = await _bucket(js)
    lock = lock_key(key)
    ttl = lock_ttl(mode, window)
    for attempt in range(CONTENDED):
        if attempt:  # lost a compare-and-set to a racing enqueue: let it finish
            await asyncio.sleep(random.uniform(0, 0.002 * min(attempt, 10)))
        now = time.time()
        mine = _lock_value(job_id, key, queue, now + window)
        if await _create(kv, lock, mine, ttl):
            return Claim(job_id, True, run_at=now + window, holder_id=holder_msg_id(job_id))
        try:
            entry = await kv.get(lock)
        except KeyNotFoundError:
            continue
        held = _parse_lock(entry.value)
        start = None if held is None else next_start(mode, now, held["run_at"], window)
        if held is not None and start is not None:
            holder = held["job_id"]
            if finished is None or not await finished(holder):  # not cancelled meanwhile
                # Replace the waiting job: the same id, these arguments.
                value = _lock_value(holder, key, held["queue"], start)
                rev = await _swap(js, lock, value, entry.revision, start - now + LOCK_MARGIN)
                if rev is None:
                    continue  # another enqueue changed it meanwhile: look again
                holder_id = f"{holder_msg_id(holder)}.r{rev}"
                return Claim(holder, False, run_at=start, holder_id=holder_id)
        # It has started (or is about to): this enqueue makes a new waiting job.
        rev = await _swap(js, lock, mine, entry.revision, ttl)
        if rev is not None:
            return Claim(job_id, True, run_at=now + window, holder_id=holder_msg_id(job_id))
    raise NaqdError(f"unique key {key!r} is contended; try again")


async def _create(kv: Any, lock: str, value: bytes, ttl: float) -> bool:
    """Create the lock; False when it exists. A refused create makes nats-py read the key
    (to tell a deleted one from a live one), and a lock whose TTL ends between the two
    raised KeyNotFoundError from there: at a throttle window's very end, the enqueue
    that should have made the new job failed. That is "not created" too; the caller
    reads the lock, finds none, and creates again."""
    try:
        await kv.create(lock, value, msg_ttl=ttl)
    except (KeyWrongLastSequenceError, KeyNotFoundError):
        return False
    return True


def _lock_value(job_id: str, key: str, queue: str, run_at: float) -> bytes:
    return json.dumps({"job_id": job_id, "key": key, "queue": queue, "run_at": run_at}).encode()


def _parse_lock(value: bytes | None) -> dict[str, Any] | None:
    try:
        held = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(held, dict) or not isinstance(held.get("job_id"), str):
        return None
    if not isinstance(held.get("queue"), str) or not isinstance(held.get("run_at"), int | float):
        return None  # an until_done or throttle lock: not a waiting job
    return held


async def _swap(js: Any, lock: str, value: bytes, last: int, ttl: float) -> int | None:
    """Compare-and-set with a new TTL (nats-py's kv.update sets none): the new revision,
    or None when the lock changed since `last`."""
    headers = {HDR_EXPECTED_LAST_SUBJECT_SEQ: str(last), HDR_TTL: f"{math.ceil(ttl)}s"}
    try:
        ack = await js.publish(kv_subject(UNIQUE_BUCKET, lock), value, headers=headers)
    except BadRequestError as exc:
        if lost_compare_and_set(exc):
            return None
        raise
    return int(ack.seq)


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
    kv = await _bucket(js)
    lock = lock_key(key)
    value = json.dumps({"job_id": job_id, "key": key}).encode()
    for _ in range(10):
        if await _create(kv, lock, value, ttl):
            return job_id
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
                    await _delete_if(kv, lock, entry.revision)
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
        await _delete_if(kv, lock, entry.revision)
    except KeyWrongLastSequenceError:
        return False
    return True


async def _delete_if(kv: Any, lock: str, revision: int) -> None:
    """Compare-and-delete. nats-py's `delete(last=)` reports a lost race as a plain
    BadRequestError ("wrong last sequence", 10071 or 10164), not as the
    KeyWrongLastSequenceError its `create` and `update` raise: one error for both."""
    try:
        await kv.delete(lock, last=revision)
    except BadRequestError as exc:
        if lost_compare_and_set(exc):
            raise KeyWrongLastSequenceError(description=exc.description) from None
        raise
