"""What becomes of a job: decided here, applied in worker/settle.py. Pure (no I/O, no
clock but the records' timestamps), so the rules are table-tested (tests/unit/
test_outcome.py), as hypercorn keeps its protocol state machines apart from I/O.

The outcomes, and what applying each does (docs/delivery.md):

- `succeeded`: final record stored, done notice, +ACK, unique lock released;
- `retry`: `retrying` record stored (attempts and errors), nak after `delay`;
- `dead`: dead-letter entry and `failed` record stored, done notice, +TERM, lock released;
- `cancelled`: `cancelled` record stored, done notice, +ACK, lock released;
- `handed_back`: the worker is stopping: the `running` record goes back to `queued`, nak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from naqd.protocol.deadletter import Reason
from naqd.protocol.envelope import ErrorInfo, ResultRecord, encode_plain, encode_result
from naqd.worker.retry import RetryPolicy
from naqd.worker.tasks import BadArguments, TaskNotFound

if TYPE_CHECKING:
    from naqd.protocol.signing import Keyring

Kind = Literal["succeeded", "retry", "dead", "cancelled", "handed_back"]


class UnstorableResult(Exception):
    """The task returned a value its result encoding cannot hold (not JSON-serializable,
    or not picklable). Permanent: running the task again would return the same value."""


# Errors of the job itself that retrying cannot fix, and the dead-letter reason for each.
PERMANENT: dict[type[Exception], Reason] = {
    TaskNotFound: "unknown_task",
    BadArguments: "bad_arguments",
    UnstorableResult: "failed",
}


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Kind
    delay: float = 0.0  # retry: seconds before the next attempt
    reason: Reason | None = None  # dead: the dead-letter reason
    note: str = ""  # dead: appended to the error message


# The outcomes that carry nothing of their own are shared: no allocation per job.
SUCCEEDED = Decision("succeeded")
CANCELLED = Decision("cancelled")
HANDED_BACK = Decision("handed_back")
WORKER_LOST = Decision("dead", reason="worker_lost")
UNREADABLE = Decision("dead", reason="unreadable")


def before_run(*, cancelled: bool, attempt: int, max_attempts: int) -> Decision | None:
    """A job that needs no run: cancelled before it started, or one whose workers kept
    dying while running it until its attempts were used up. None: run it."""
    if cancelled:
        return CANCELLED
    if attempt > max_attempts:
        return WORKER_LOST
    return None


def after_run(
    exc: BaseException | None,
    *,
    cancelled: bool,
    shutting_down: bool,
    attempt: int,
    policy: RetryPolicy,
    delivered: int,
    deliveries: int,
    rand: float | None = None,
) -> Decision:
    """The outcome of a run that returned (`exc` None) or raised `exc`. `cancelled`: it
    ended because a cancel was requested; `shutting_down`: the worker stopped it to exit.
    A failure is retried while the policy allows it and attempts and deliveries are left.
    A job that returned has succeeded, even if a cancel request came too late to stop it."""
    if exc is None:
        return SUCCEEDED
    if cancelled:
        return CANCELLED
    if shutting_down:
        return HANDED_BACK
    permanent = next((r for t, r in PERMANENT.items() if isinstance(exc, t)), None)
    if permanent is not None:
        return Decision("dead", reason=permanent)
    if not policy.retryable(exc) or attempt >= policy.max_attempts:
        return Decision("dead", reason="failed")
    if delivered >= deliveries:
        # The server would not deliver it again: dead-letter it now.
        return Decision("dead", reason="failed", note="max_deliveries reached")
    return Decision("retry", delay=policy.delay(attempt, rand))


# -- the records each outcome stores -----------------------------------------------------


def final_record(base: ResultRecord, result: Any, error: ErrorInfo | None) -> ResultRecord:
    """`succeeded` (or `failed` with `error`), finished now."""
    # Built directly: dataclasses.replace inspects every field on each call.
    return ResultRecord(
        id=base.id,
        status="failed" if error else "succeeded",
        result=result,
        error=error,
        attempts=base.attempts,
        task=base.task,
        queue=base.queue,
        enqueued_at=base.enqueued_at,
        started_at=base.started_at,
        finished_at=time.time(),
        worker=base.worker,
        encoding=base.encoding,
        errors=base.errors,
        progress=base.progress,
        progress_message=base.progress_message,
    )


def succeeded_data(base: ResultRecord, result: Any, keyring: Keyring | None) -> bytes:
    """final_record(base, result, None), encoded; a plain one (JSON, no errors before, no
    progress) without building the record (~0.8 us a job). Raises as encode_result does
    for a result that cannot be encoded."""
    if base.encoding == "json" and not base.errors and base.progress is None:
        data = encode_plain(
            base.id,
            "succeeded",
            result,
            base.attempts,
            base.task,
            base.queue,
            base.enqueued_at,
            base.started_at,
            time.time(),
            base.worker,
        )
        if data is not None:
            return data
    return encode_result(final_record(base, result, None), keyring)


def failure_record(
    decision: Decision, base: ResultRecord, error: ErrorInfo, errors: tuple[ErrorInfo, ...]
) -> ResultRecord:
    """`retrying` (kept for the next attempt to count) or the final `failed` record."""
    if decision.kind == "retry":
        return replace(base, status="retrying", error=error, errors=errors)
    return replace(final_record(base, None, error), errors=errors)


def cancelled_record(base: ResultRecord) -> ResultRecord:
    return replace(final_record(base, None, None), status="cancelled")


def attempt_of(
    prior: ResultRecord | None, delivered: int, store: bool
) -> tuple[int, tuple[ErrorInfo, ...]]:
    """This attempt's number and the errors so far. Deliveries overcount attempts (a job
    handed back at shutdown is delivered again), so the stored record counts them."""
    if not store:
        return delivered, ()
    if prior is None or delivered == 1:
        return 1, ()
    errors = prior.errors
    if prior.status == "running":
        lost = ErrorInfo(
            "WorkerLost",
            f"attempt {prior.attempts} ended without an outcome (worker {prior.worker} died)",
        )
        errors = (*errors, lost)
    return prior.attempts + 1, errors
