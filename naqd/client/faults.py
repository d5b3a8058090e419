"""The client's one error contract (docs/client.md#errors): a NATS failure inside a public
call leaves it as a `NaqdError` subclass, never as a nats-py exception. `translate` is
the pure decision (table-tested in tests/unit/test_faults.py); `guarded` applies it to
every public coroutine of a class, so a method added later is covered too."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import nats.errors
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from naqd.client.errors import ConnectError, EnqueueError, NaqdError, Unavailable
from naqd.client.readiness import NotInitialized

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type)

STREAM_NOT_FOUND = 10059  # JetStream's err_code for "stream not found"

# Lost or absent connection: nothing was (or could be) sent.
_NO_CONNECTION = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,  # and UnexpectedEOF
)
# Sent, but no one answered in time: no leader, no quorum, a server going away.
_NO_ANSWER = (
    nats.errors.NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
    TimeoutError,  # nats.errors.TimeoutError, asyncio's, a KV watch's
)


def translate(exc: BaseException, enqueue: bool = False) -> NaqdError | None:
    """The NaqdError that `exc`, raised inside a client call, stands for; None when it is
    not a NATS failure (our own errors, bad arguments, a bug) and goes up unchanged.
    Inside an enqueue, a lost connection or an unanswered request is an EnqueueError
    (the job was not stored), whichever step failed: the unique lock, the known
    queues, the publish."""
    error = translate_nats(exc)
    if enqueue and isinstance(error, Unavailable):
        return EnqueueError(f"the job was not stored: {error}")
    return error


def translate_nats(exc: BaseException) -> NaqdError | None:
    """`translate` outside an enqueue."""
    if isinstance(exc, NaqdError) or not isinstance(exc, Exception):
        return None
    what = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(exc, _NO_CONNECTION):
        return ConnectError(f"no connection to NATS ({what})")
    if isinstance(exc, _NO_ANSWER):
        return Unavailable(f"NATS did not answer ({what}); is the server up and JetStream led?")
    if isinstance(exc, BucketNotFoundError) or (
        isinstance(exc, NotFoundError) and getattr(exc, "err_code", None) == STREAM_NOT_FOUND
    ):
        return NotInitialized(
            f"a naqd stream or bucket does not exist yet ({what}): start a "
            "naqd daemon once, or run `naqd init --config naq.yaml`"
        )
    if isinstance(exc, APIError):
        if (getattr(exc, "code", None) or 0) >= 500:
            return Unavailable(f"JetStream could not serve the call ({what})")
        return NaqdError(f"JetStream refused the call ({what})")
    if isinstance(exc, nats.errors.Error):
        return NaqdError(f"NATS error ({what})")
    if isinstance(exc, ConnectionError):  # an OSError from the socket itself
        return ConnectError(f"no connection to NATS ({what})")
    return None


def guard(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """`fn` with its NATS failures translated, failing fast (ConnectError) when the
    client has no connection yet."""

    enqueue = fn.__name__.startswith("enqueue")

    @functools.wraps(fn)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        require = getattr(args[0], "_require_connected", None)
        if require is not None:  # a Client: fail fast while it has no connection
            require()
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            error = translate(exc, enqueue)
            if error is None:
                raise
            raise error from exc

    guarded.__naqd_guarded__ = True  # type: ignore[attr-defined]
    return guarded


UNGUARDED = frozenset({"connect", "close"})  # they handle their own errors


def guarded(cls: C) -> C:
    """Guard every public coroutine method of `cls` and of its mixins."""
    for name in dir(cls):
        if name.startswith("_") or name in UNGUARDED:
            continue
        attr = inspect.getattr_static(cls, name)
        if inspect.iscoroutinefunction(attr) and not getattr(attr, "__naqd_guarded__", False):
            setattr(cls, name, guard(attr))
    return cls
