"""Exceptions a producer can see."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from naqd.errors import NaqdError as NaqdError
from naqd.errors import NatsAuthError as NatsAuthError


class ConnectError(NaqdError):
    """No NATS server answered within the client's connect deadline."""


class EnqueueError(NaqdError):
    """The job could not be stored in JetStream within the publish deadline."""


class JobFailed(NaqdError):
    """The job ran and raised; carries the remote error type, message and traceback."""

    def __init__(self, job_id: str, error_type: str, message: str, traceback: str = "") -> None:
        super().__init__(f"job {job_id} failed: {error_type}: {message}")
        self.job_id = job_id
        self.error_type = error_type
        self.message = message
        self.traceback = traceback


class PayloadTooLarge(NaqdError, ValueError):
    """The encoded job exceeds tasks.max_payload; workers would refuse it anyway."""


class JobCancelled(NaqdError):
    """The job was cancelled (`client.cancel`). A job's own code raises it too, through
    `naqd.current_job().raise_if_cancelled()`, to stop when asked."""

    def __init__(self, job_id: str, message: str = "") -> None:
        super().__init__(f"job {job_id} was cancelled" + (f": {message}" if message else ""))
        self.job_id = job_id


class JobNotFound(NaqdError, LookupError):
    """No trace of that job id in any state: not queued, held, running, stored or dead.
    The web console answers 404."""

    def __init__(self, job_id: str, what: str = "job") -> None:
        super().__init__(f"{what} {job_id!r} not found")
        self.job_id = job_id


class DeadLetterNotFound(JobNotFound):
    """No dead letter for that job id (never dead, or requeued or deleted meanwhile)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id, "dead letter")


class Conflict(NaqdError):
    """The action lost a race with another one on the same target (for example a dead
    letter another operator is requeueing right now). The web console answers 409."""


class Unavailable(NaqdError):
    """NATS did not answer (down, reconnecting, or JetStream unavailable): the read or
    action did not happen and may be retried. The web console answers 503."""


def unavailable_from(exc: BaseException) -> Unavailable | None:
    """The Unavailable for a transport error from nats-py, or None for anything else
    (naqd's own errors, ValueError, a programming error)."""
    import asyncio

    import nats.errors
    import nats.js.errors

    if isinstance(exc, NaqdError):
        return None
    if isinstance(
        exc, nats.js.errors.ServiceUnavailableError | nats.js.errors.NoStreamResponseError
    ):
        return Unavailable(f"JetStream is unavailable: {exc}")
    if isinstance(exc, nats.js.errors.Error):
        return None  # an API answer (bad request, not found) is not an outage
    if isinstance(exc, nats.errors.Error | asyncio.TimeoutError | ConnectionError):
        name = type(exc).__name__
        return Unavailable(f"NATS is not answering ({name}): try again once it is back")
    return None


def disconnected(owner: object) -> bool:
    """Whether the connection behind `owner` (an Explorer, Actions, AuditLog, EventFeed:
    anything with `nc` or `client`) is down now: fail at once rather than wait for a
    request's timeout."""
    client = getattr(owner, "client", None)
    nc = getattr(client, "_nc", None) if client is not None else getattr(owner, "nc", None)
    return nc is not None and not bool(getattr(nc, "is_connected", True))


P = ParamSpec("P")
R = TypeVar("R")


def translated(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Raise Unavailable instead of a nats-py transport error (the console's 503)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if args and disconnected(args[0]):
            raise Unavailable("NATS is not connected (reconnecting): try again once it is back")
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            outage = unavailable_from(exc)
            if outage is None:
                raise
            raise outage from exc

    return wrapper
