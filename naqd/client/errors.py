"""Exceptions a producer can see."""

from __future__ import annotations

from naqd.errors import NaqdError as NaqdError
from naqd.errors import NatsAuthError as NatsAuthError


class Unavailable(NaqdError):
    """NATS or JetStream could not serve the call now: the connection was lost, a request
    went unanswered, or a stream has no leader. Transient: the same call may succeed once
    NATS is back (a web application answers 503)."""


class ConnectError(Unavailable):
    """The client has no connection: none within the connect deadline, not yet (it
    connects in the background), or it was closed."""


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


class ResultTimeout(NaqdError, TimeoutError):
    """The job did not finish within the `timeout` given to `result` / `wait`. Also a
    TimeoutError, so `except TimeoutError` written for earlier versions still catches it."""

    def __init__(self, job_id: str, timeout: float | None) -> None:
        super().__init__(f"job {job_id} did not finish within {timeout}s")
        self.job_id = job_id


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


class ProcessNotFound(JobNotFound):
    """No live naqd process has that heartbeat key (stopped, or its heartbeat expired)."""

    def __init__(self, key: str) -> None:
        super().__init__(key, "live process")


class Conflict(NaqdError):
    """The action lost a race with another one on the same target (for example a dead
    letter another operator is requeueing right now). The web console answers 409."""


def disconnected(owner: object) -> bool:
    """Whether the connection behind `owner` (an Explorer, Actions, AuditLog, EventFeed:
    anything with `nc` or `client`) is down now: fail at once rather than wait for a
    request's timeout."""
    client = getattr(owner, "client", None)
    nc = getattr(client, "_nc", None) if client is not None else getattr(owner, "nc", None)
    return nc is not None and not bool(getattr(nc, "is_connected", True))
