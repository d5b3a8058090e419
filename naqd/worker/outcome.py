"""What becomes of a job: decided here, applied in worker/settle.py. Pure (no I/O, no
clock but the records' timestamps), so the rules are table-tested (tests/unit/
test_outcome.py), as hypercorn keeps its protocol state machines apart from I/O.

`decide()` returns an outcome that carries everything applying it needs, and what
applying each does (docs/delivery.md):

- `Succeeded(data)`: the final record (encoded) stored, done notice, +ACK, unique lock
  released;
- `Retry(delay, record)`: the `retrying` record (attempts and errors) stored, nak after
  `delay`;
- `Dead(entry, record)`: dead-letter entry and `failed` record stored, done notice, +TERM,
  lock released;
- `Cancelled(record)`: the `cancelled` record stored, done notice, +ACK, lock released;
- `HANDED_BACK`: the worker is stopping: the `running` record goes back to `queued`, nak.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from naqd.protocol.deadletter import DeadLetter, Reason
from naqd.protocol.envelope import (
    Envelope,
    ErrorInfo,
    ResultRecord,
    encode_plain,
    encode_result,
)
from naqd.worker.deadletter import entry_id, kept_headers, queue_of
from naqd.worker.retry import RetryPolicy
from naqd.worker.tasks import BadArguments, TaskNotFound

if TYPE_CHECKING:
    from nats.aio.msg import Msg

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
    """Which outcome, before its records are built (the rules of before_run/after_run)."""

    kind: Kind
    delay: float = 0.0  # retry: seconds before the next attempt
    reason: Reason | None = None  # dead: the dead-letter reason
    note: str = ""  # dead: appended to the error message


# The decisions that carry nothing of their own are shared: no allocation per job.
SUCCEEDED = Decision("succeeded")
CANCELLED = Decision("cancelled")
HANDED_BACK_DECISION = Decision("handed_back")
WORKER_LOST = Decision("dead", reason="worker_lost")
UNREADABLE = Decision("dead", reason="unreadable")


# -- outcomes: a decision with what applying it needs ------------------------------------


@dataclass(slots=True)
class Succeeded:
    """The final record, encoded; `result` is what the task returned (for middleware)."""

    data: bytes
    result: Any = None
    kind: ClassVar[Kind] = "succeeded"


@dataclass(frozen=True, slots=True)
class Retry:
    """Nak with `delay` once the `retrying` record is stored (the next attempt reads it to
    count attempts and errors). `max_attempts` is for the log line."""

    delay: float
    record: ResultRecord
    exc: BaseException | None = field(default=None, compare=False)
    max_attempts: int = 0
    kind: ClassVar[Kind] = "retry"


@dataclass(frozen=True, slots=True)
class Dead:
    """Stored in the DLQ (`entry`) with its `failed` record, then termed. `record` is None
    for a refused message filed under no usable job id (nobody can wait on it); `ran`:
    the job was started (its run metrics end here), not refused or lost before it ran."""

    entry: DeadLetter
    record: ResultRecord | None
    exc: BaseException | None = field(default=None, compare=False)
    ran: bool = True
    kind: ClassVar[Kind] = "dead"


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The `cancelled` record, acked. `ran`: it was cancelled while running, not before."""

    record: ResultRecord
    ran: bool = True
    kind: ClassVar[Kind] = "cancelled"


@dataclass(frozen=True, slots=True)
class HandedBack:
    """The worker is stopping: nak without counting the attempt."""

    kind: ClassVar[Kind] = "handed_back"


HANDED_BACK = HandedBack()

Outcome = Succeeded | Retry | Dead | Cancelled | HandedBack


# -- the rules ---------------------------------------------------------------------------


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
        return HANDED_BACK_DECISION
    permanent = next((r for t, r in PERMANENT.items() if isinstance(exc, t)), None)
    if permanent is not None:
        return Decision("dead", reason=permanent)
    if not policy.retryable(exc) or attempt >= policy.max_attempts:
        return Decision("dead", reason="failed")
    if delivered >= deliveries:
        # The server would not deliver it again: dead-letter it now.
        return Decision("dead", reason="failed", note="max_deliveries reached")
    return Decision("retry", delay=policy.delay(attempt, rand))


def decide(
    msg: Msg,
    env: Envelope,
    base: ResultRecord,
    policy: RetryPolicy,
    delivered: int,
    deliveries: int,
    keyring: Keyring | None,
    skipped: Decision | None = None,
    exc: BaseException | None = None,
    result: Any = None,
    cancelled: bool = False,
    shutting_down: bool = False,
    rand: float | None = None,
) -> Outcome:
    """The one outcome of one delivery, with its records built. `base` is the attempt's
    record (attempts, errors so far, progress); `skipped` is before_run's verdict for a
    job that did not run; otherwise the run returned `result` or raised `exc`. `msg` is
    only read (subject, payload, headers, stream sequence) for a dead-letter entry.
    The runner passes every argument by position: keywords cost ~2% of a job's CPU."""
    if skipped is not None:
        if skipped.kind == "cancelled":
            return Cancelled(cancelled_record(base), ran=False)
        # Its workers kept dying while running it: the attempts are used up.
        errors = base.errors
        error = errors[-1] if errors else ErrorInfo("WorkerLost", "attempts used up")
        return _dead(msg, env, base, skipped, error, errors, None, ran=False)
    if exc is None:
        try:
            return Succeeded(succeeded_data(base, result, keyring), result)
        except Exception as unstorable:
            # The task ran, but its outcome cannot be stored or announced: a failure,
            # never a success without its result (docs/delivery.md).
            error = ErrorInfo(
                type(unstorable).__name__,
                f"the return value of {env.task} cannot be stored: {unstorable}",
                _traceback(unstorable),
                base.worker,
                base.started_at,
                time.time(),
            )
            exc = UnstorableResult(str(unstorable))
            decision = after_run(
                exc,
                cancelled=False,
                shutting_down=False,
                attempt=base.attempts,
                policy=policy,
                delivered=delivered,
                deliveries=deliveries,
                rand=rand,
            )
            return _dead(msg, env, base, decision, error, (*base.errors, error), exc)
    decision = after_run(
        exc,
        cancelled=cancelled,
        shutting_down=shutting_down,
        attempt=base.attempts,
        policy=policy,
        delivered=delivered,
        deliveries=deliveries,
        rand=rand,
    )
    kind = decision.kind
    if kind == "handed_back":
        return HANDED_BACK
    if kind == "cancelled":
        return Cancelled(cancelled_record(base))
    error = ErrorInfo(
        type(exc).__name__, str(exc), _traceback(exc), base.worker, base.started_at, time.time()
    )
    errors = (*base.errors, error)
    if kind == "retry":
        record = failure_record(decision, base, error, errors)
        return Retry(decision.delay, record, exc, policy.max_attempts)
    return _dead(msg, env, base, decision, error, errors, exc)


def refused(
    msg: Msg,
    exc: Exception,
    refused_as: tuple[str | None, str],
    delivered: int,
    worker: str,
) -> Dead:
    """A message refused at admission (unreadable, unsigned, not allowed ...): filed in the
    DLQ under `refused_as` (admission.refused_job: its id when readable and valid, and its
    task). Its producer may be waiting on that id: a `failed` record, when it has one."""
    error = ErrorInfo(type(exc).__name__, str(exc))
    job_id, task = refused_as
    queue = queue_of(msg.subject)
    entry = dead_letter_entry(
        msg, job_id, task, queue, "unreadable", error, (error,), delivered, worker
    )
    record = None
    if job_id is not None and entry.id == job_id:
        record = ResultRecord(
            id=entry.id,
            status="failed",
            task=task,
            error=error,
            errors=(error,),
            attempts=delivered,
            queue=entry.queue,
            finished_at=time.time(),
            worker=worker,
        )
    return Dead(entry, record, exc, ran=False)


def dead_letter_entry(
    msg: Msg,
    job_id: str | None,
    task: str,
    queue: str,
    reason: Reason,
    error: ErrorInfo,
    errors: tuple[ErrorInfo, ...],
    attempts: int,
    worker: str,
) -> DeadLetter:
    """The DLQ entry of a delivered message: the job as it came, with why it died; filed
    under its job id when that is usable as a subject token, else its stream sequence."""
    seq = msg.metadata.sequence.stream
    return DeadLetter(
        id=entry_id(job_id, seq),
        queue=queue,
        reason=reason,
        error=error,
        errors=errors,
        subject=msg.subject,
        payload=msg.data,
        headers=kept_headers(msg.headers),
        attempts=attempts,
        task=task,
        stream_seq=seq,
        worker=worker,
    )


def _dead(
    msg: Msg,
    env: Envelope,
    base: ResultRecord,
    decision: Decision,
    error: ErrorInfo,
    errors: tuple[ErrorInfo, ...],
    exc: BaseException | None,
    *,
    ran: bool = True,
) -> Dead:
    assert decision.reason is not None
    if decision.note:
        error = replace(error, message=f"{error.message} ({decision.note})")
    entry = dead_letter_entry(
        msg,
        env.id,
        env.task,
        env.queue,
        decision.reason,
        error,
        errors,
        base.attempts,
        base.worker or "",
    )
    return Dead(entry, failure_record(decision, base, error, errors), exc, ran=ran)


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


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
        args=base.args,
        kwargs=base.kwargs,
    )


def succeeded_data(base: ResultRecord, result: Any, keyring: Keyring | None) -> bytes:
    """final_record(base, result, None), encoded; a plain one (JSON, no errors before, no
    progress) without building the record (~0.8 us a job). Raises as encode_result does
    for a result that cannot be encoded."""
    if base.encoding == "json" and not base.errors and base.progress is None and base.args is None:
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
            "",
            prior.worker,
            prior.started_at,
        )
        errors = (*errors, lost)
    return prior.attempts + 1, errors
