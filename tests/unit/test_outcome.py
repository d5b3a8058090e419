"""The outcome of a job, decided apart from applying it (naqd/worker/outcome.py)."""

from __future__ import annotations

import asyncio

import pytest

from naqd.models import BackoffConfig
from naqd.protocol.envelope import ErrorInfo, ResultRecord
from naqd.worker.outcome import (
    CANCELLED,
    HANDED_BACK_DECISION,
    SUCCEEDED,
    WORKER_LOST,
    Decision,
    UnstorableResult,
    after_run,
    attempt_of,
    before_run,
    cancelled_record,
    failure_record,
)
from naqd.worker.retry import RetryPolicy
from naqd.worker.tasks import BadArguments, TaskNotFound

FIXED = BackoffConfig(strategy="fixed", base=3.0, max=60.0, jitter=0.0)
POLICY = RetryPolicy(retries=2, backoff=FIXED)  # 3 attempts
ONLY_VALUE = RetryPolicy(retries=2, backoff=FIXED, retry_on=("ValueError",))


@pytest.mark.parametrize(
    ("exc", "cancelled", "shutting_down", "attempt", "policy", "delivered", "expected"),
    [
        # returned: succeeded, even if a cancel request came too late to stop it
        (None, False, False, 1, POLICY, 1, SUCCEEDED),
        (None, True, False, 1, POLICY, 1, SUCCEEDED),
        # a cancel wins over the error it ended with, and over shutdown
        (RuntimeError("x"), True, False, 1, POLICY, 1, CANCELLED),
        (asyncio.CancelledError(), True, True, 1, POLICY, 1, CANCELLED),
        # stopped by a shutdown: handed back, the attempt does not count
        (asyncio.CancelledError(), False, True, 1, POLICY, 1, HANDED_BACK_DECISION),
        # retried while attempts are left, after the policy's delay
        (RuntimeError("x"), False, False, 1, POLICY, 1, Decision("retry", delay=3.0)),
        (RuntimeError("x"), False, False, 2, POLICY, 2, Decision("retry", delay=3.0)),
        # attempts used up
        (RuntimeError("x"), False, False, 3, POLICY, 3, Decision("dead", reason="failed")),
        # not retryable by the policy
        (RuntimeError("x"), False, False, 1, ONLY_VALUE, 1, Decision("dead", reason="failed")),
        (ValueError("x"), False, False, 1, ONLY_VALUE, 1, Decision("retry", delay=3.0)),
        # the server would not deliver it again
        (
            RuntimeError("x"),
            False,
            False,
            1,
            POLICY,
            5,
            Decision("dead", reason="failed", note="max_deliveries reached"),
        ),
        # errors of the job itself: never retried
        (TaskNotFound("t"), False, False, 1, POLICY, 1, Decision("dead", reason="unknown_task")),
        (BadArguments("a"), False, False, 1, POLICY, 1, Decision("dead", reason="bad_arguments")),
        (UnstorableResult("r"), False, False, 1, POLICY, 1, Decision("dead", reason="failed")),
    ],
)
def test_after_run(
    exc: BaseException | None,
    cancelled: bool,
    shutting_down: bool,
    attempt: int,
    policy: RetryPolicy,
    delivered: int,
    expected: Decision,
) -> None:
    got = after_run(
        exc,
        cancelled=cancelled,
        shutting_down=shutting_down,
        attempt=attempt,
        policy=policy,
        delivered=delivered,
        deliveries=5,
        rand=0.0,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("cancelled", "attempt", "expected"),
    [
        (False, 1, None),
        (False, 3, None),
        (False, 4, WORKER_LOST),  # its workers kept dying: attempts used up
        (True, 1, CANCELLED),
        (True, 4, CANCELLED),
    ],
)
def test_before_run(cancelled: bool, attempt: int, expected: Decision | None) -> None:
    assert before_run(cancelled=cancelled, attempt=attempt, max_attempts=3) == expected


BASE = ResultRecord(id="j1", status="running", attempts=2, task="m:t", queue="q")
E1 = ErrorInfo("ValueError", "first")
E2 = ErrorInfo("ValueError", "second")


@pytest.mark.parametrize(
    ("decision", "status"),
    [(Decision("retry", delay=1.0), "retrying"), (Decision("dead", reason="failed"), "failed")],
)
def test_failure_record(decision: Decision, status: str) -> None:
    rec = failure_record(decision, BASE, E2, (E1, E2))
    assert (rec.status, rec.error, rec.errors, rec.attempts) == (status, E2, (E1, E2), 2)
    assert (rec.finished_at is not None) == (status == "failed")


def test_cancelled_record() -> None:
    rec = cancelled_record(BASE)
    assert (rec.status, rec.error, rec.result) == ("cancelled", None, None)
    assert rec.finished_at is not None


@pytest.mark.parametrize(
    ("prior", "delivered", "store", "attempt", "errors"),
    [
        (None, 1, True, 1, 0),
        (None, 3, False, 3, 0),  # no record kept: deliveries are all there is
        (None, 2, True, 1, 0),  # the record expired
        (ResultRecord(id="j", status="retrying", attempts=1, errors=(E1,)), 2, True, 2, 1),
        # the last attempt left no outcome: its worker died, that counts as an error
        (ResultRecord(id="j", status="running", attempts=1, errors=(E1,)), 2, True, 2, 2),
    ],
)
def test_attempt_of(
    prior: ResultRecord | None, delivered: int, store: bool, attempt: int, errors: int
) -> None:
    got_attempt, got_errors = attempt_of(prior, delivered, store)
    assert (got_attempt, len(got_errors)) == (attempt, errors)


@pytest.mark.parametrize(
    "base",
    [
        ResultRecord(id="j", status="running", attempts=1, task="m:f", queue="q",
                     enqueued_at=1.5, started_at=2.5, worker="h:1"),  # plain: no record built
        ResultRecord(id="j", status="running", attempts=2, task="m:f", queue="q",
                     enqueued_at=1.5, started_at=2.5, worker="h:1",
                     errors=(ErrorInfo("E", "m"),)),  # errors before: the general path
        ResultRecord(id="j", status="running", attempts=1, enqueued_at=1.5, started_at=2.5,
                     progress=0.5, progress_message="half"),
        ResultRecord(id="j", status="running", attempts=1, enqueued_at=0, started_at=None),
    ],
)  # fmt: skip
def test_succeeded_data_is_the_encoded_final_record(base: ResultRecord) -> None:
    from naqd.protocol.envelope import decode_result
    from naqd.worker.outcome import final_record, succeeded_data

    got = decode_result(succeeded_data(base, {"n": [1, 2]}, None))
    want = final_record(base, {"n": [1, 2]}, None)
    assert got.finished_at is not None and abs(got.finished_at - (want.finished_at or 0)) < 5
    got.finished_at = want.finished_at
    assert got == want


def test_succeeded_data_refuses_a_result_it_cannot_encode() -> None:
    from naqd.worker.outcome import succeeded_data

    base = ResultRecord(id="j", status="running", enqueued_at=1.5, started_at=2.5)
    with pytest.raises(TypeError, match="not JSON-serializable"):
        succeeded_data(base, {1, 2}, None)


# -- decide(): the outcome with what applying it needs -----------------------------------


def _decide(**kw: object) -> object:
    from naqd.client.client import Client
    from naqd.protocol.envelope import decode_job
    from naqd.worker.outcome import decide
    from tests.fakes import FakeNats, job_message

    _, payload, headers = Client("nats://unused").build("m:t", (), {}, queue="q")
    env = decode_job(payload)
    attempt = int(kw.pop("attempt", 1))  # type: ignore[call-overload]
    errors = tuple(kw.pop("errors", ()))  # type: ignore[call-overload]
    base = ResultRecord(
        id=env.id, status="running", attempts=attempt, task="m:t", queue="q",
        started_at=1.0, worker="h:1", errors=errors,
    )  # fmt: skip
    msg = job_message(FakeNats(), payload, headers, seq=9, delivered=attempt)
    delivered = int(kw.pop("delivered", attempt))  # type: ignore[call-overload]
    return decide(
        msg, env, base, policy=POLICY, delivered=delivered, deliveries=5, keyring=None,
        rand=0.0, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_decide_a_success_carries_its_encoded_record() -> None:
    import json

    from naqd.worker.outcome import Succeeded

    got = _decide(result={"n": 1})
    assert isinstance(got, Succeeded) and got.result == {"n": 1}
    rec = json.loads(got.data)
    assert (rec["status"], rec["result"], rec["attempts"]) == ("succeeded", {"n": 1}, 1)


@pytest.mark.parametrize(
    ("happened", "kind", "status", "reason", "message"),
    [
        ({"exc": RuntimeError("boom")}, "retry", "retrying", None, "boom"),
        ({"exc": RuntimeError("boom"), "attempt": 3}, "dead", "failed", "failed", "boom"),
        ({"exc": RuntimeError("boom"), "delivered": 5}, "dead", "failed", "failed",
         "boom (max_deliveries reached)"),
        ({"exc": TaskNotFound("no m:t")}, "dead", "failed", "unknown_task", "no m:t"),
        ({"result": {1, 2}}, "dead", "failed", "failed", "cannot be stored"),
        ({"exc": RuntimeError("c"), "cancelled": True}, "cancelled", "cancelled", None, None),
        ({"skipped": CANCELLED}, "cancelled", "cancelled", None, None),
        ({"skipped": WORKER_LOST, "attempt": 4, "errors": (E1,)}, "dead", "failed",
         "worker_lost", "first"),
        ({"skipped": WORKER_LOST, "attempt": 4}, "dead", "failed", "worker_lost",
         "attempts used up"),
    ],
)  # fmt: skip
def test_decide(
    happened: dict[str, object], kind: str, status: str, reason: str | None, message: str | None
) -> None:
    from naqd.worker.outcome import Dead

    got = _decide(**happened)
    assert got.kind == kind  # type: ignore[attr-defined]
    record = got.record  # type: ignore[attr-defined]
    assert record.status == status
    if message is not None:
        assert message in record.error.message
    if isinstance(got, Dead):
        # The entry keeps the job as delivered, filed under its id, with why it died.
        assert (got.entry.reason, got.entry.id, got.entry.stream_seq) == (reason, record.id, 9)
        assert got.entry.error == record.error and got.entry.attempts == record.attempts
        assert got.ran == ("skipped" not in happened)


def test_decide_a_shutdown_hands_the_job_back() -> None:
    from naqd.worker.outcome import HANDED_BACK

    assert _decide(exc=asyncio.CancelledError(), shutting_down=True) is HANDED_BACK
