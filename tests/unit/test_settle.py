"""Applying an outcome (naqd/worker/settle.py) on a fake connection (tests/fakes.py): every
outcome in the one order store → notify → ack/nak/term → unlock, nothing acked when a
store fails, and the counts kept where the outcome is applied."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from naqd.client.client import Client
from naqd.models import BackoffConfig
from naqd.observe.metrics import JobObserver
from naqd.protocol.envelope import Envelope, EnvelopeError, ResultRecord, decode_job
from naqd.protocol.names import HDR_UNIQUE, UNIQUE_BUCKET, result_subject
from naqd.transport.streamwriter import StreamWriter
from naqd.worker.outcome import CANCELLED, HANDED_BACK, WORKER_LOST, Outcome, decide, refused
from naqd.worker.retry import RetryPolicy
from naqd.worker.settle import Settler
from naqd.worker.timeouts import JobTimeout
from tests.fakes import FakeNats, job_message

POLICY = RetryPolicy(
    retries=2, backoff=BackoffConfig(strategy="fixed", base=3.0, max=60.0, jitter=0.0)
)
CLIENT = Client("nats://unused")
LOCK = "lock-key"


def _job(result_ttl: float | None, unique: bool) -> tuple[Envelope, bytes, dict[str, str]]:
    _, payload, headers = CLIENT.build(
        "tests.tasks:add", (1, 2), {}, queue="q", result_ttl=result_ttl
    )
    if unique:
        headers[HDR_UNIQUE] = LOCK
    return decode_job(payload), payload, headers


def _base(env: Envelope, attempt: int = 1) -> ResultRecord:
    return ResultRecord(
        id=env.id, status="running", attempts=attempt, task=env.task, queue=env.queue,
        enqueued_at=env.enqueued_at, started_at=1.0, worker="host:1",
    )  # fmt: skip


# How each row's outcome is decided: (msg, env, base) -> decide(...) with what happened.
Decider = Callable[[Any, Envelope, ResultRecord], Outcome]


def _ran(result: Any = None, exc: BaseException | None = None, **kw: Any) -> Decider:
    def d(msg: Any, env: Envelope, base: ResultRecord) -> Outcome:
        return decide(
            msg, env, base, policy=POLICY, delivered=base.attempts, deliveries=10,
            keyring=None, exc=exc, result=result, rand=0.0, **kw,
        )  # fmt: skip

    return d


def _skipped(decision: Any) -> Decider:
    def d(msg: Any, env: Envelope, base: ResultRecord) -> Outcome:
        return decide(
            msg, env, base, policy=POLICY, delivered=4, deliveries=10, keyring=None,
            skipped=decision,
        )  # fmt: skip

    return d


CANCEL_FIRST = _skipped(CANCELLED)


@pytest.mark.parametrize(
    ("name", "decider", "attempt", "ttl", "unique", "steps", "counts"),
    [
        ("success", _ran(3), 1, None, False, ["store", "notify", "ack"], (1, 0, 0)),
        ("unique", _ran(3), 1, None, True, ["store", "notify", "ack", "unlock"], (1, 0, 0)),
        # result_ttl 0: no record, but the done notice still carries the outcome
        ("success, fire-and-forget", _ran(3), 1, 0, True, ["notify", "ack", "unlock"], (1, 0, 0)),
        # a retry keeps its lock: the job is still pending
        ("retry", _ran(exc=RuntimeError("x")), 1, None, True, ["store", "nak"], (0, 0, 0)),
        ("retry, fire-and-forget", _ran(exc=RuntimeError("x")), 1, 0, False, ["nak"], (0, 0, 0)),
        ("timeout", _ran(exc=JobTimeout("t")), 1, None, False, ["store", "nak"], (0, 0, 0)),
        # dead: the DLQ entry first, then its record, then the notice, then term
        ("dead", _ran(exc=RuntimeError("x")), 3, None, True,
         ["bury", "store", "notify", "term", "unlock"], (0, 1, 0)),
        ("dead, fire-and-forget", _ran(exc=RuntimeError("x")), 3, 0, False,
         ["bury", "notify", "term"], (0, 1, 0)),
        ("unstorable result", _ran({1, 2}), 1, None, False,
         ["bury", "store", "notify", "term"], (0, 1, 0)),
        ("cancelled while running", _ran(exc=RuntimeError("c"), cancelled=True), 1, None, True,
         ["store", "notify", "ack", "unlock"], (0, 0, 1)),
        ("cancelled before it ran", CANCEL_FIRST, 1, None, False,
         ["store", "notify", "ack"], (0, 0, 1)),
        ("workers kept dying", _skipped(WORKER_LOST), 4, None, False,
         ["bury", "store", "notify", "term"], (0, 1, 0)),
    ],
)  # fmt: skip
async def test_settle_order(
    name: str,
    decider: Decider,
    attempt: int,
    ttl: float | None,
    unique: bool,
    steps: list[str],
    counts: tuple[int, int, int],
) -> None:
    nc = FakeNats()
    env, payload, headers = _job(ttl, unique)
    if unique:
        nc.js.kv_data[UNIQUE_BUCKET] = {LOCK: json.dumps({"job_id": env.id}).encode()}
    msg = job_message(nc, payload, headers, delivered=attempt)
    settler, writer = await _settler(nc)
    outcome = decider(msg, env, _base(env, attempt))
    await settler.settle(msg, env, outcome)
    await writer.stop()
    assert nc.steps(env.id) == steps, name
    assert (settler.done, settler.failed, settler.cancelled) == counts, name


async def test_a_retry_naks_with_its_delay_and_stores_the_error() -> None:
    nc = FakeNats()
    env, payload, headers = _job(None, False)
    msg = job_message(nc, payload, headers)
    settler, writer = await _settler(nc)
    await settler.settle(msg, env, _ran(exc=ValueError("boom"))(msg, env, _base(env)))
    await writer.stop()
    nak = [c for c in nc.calls if c.subject == msg.reply]
    assert [c.data for c in nak] == [b'-NAK {"delay": 3000000000}']
    record = json.loads(next(c.data for c in nc.calls if c.subject == result_subject(env.id)))
    assert (record["status"], record["error"]["type"], record["attempts"]) == (
        "retrying",
        "ValueError",
        1,
    )


@pytest.mark.parametrize("job_id_readable", [True, False])
async def test_a_refused_message_is_buried_then_termed(job_id_readable: bool) -> None:
    nc = FakeNats()
    headers = {"Nats-Msg-Id": "abc123"} if job_id_readable else {}
    msg = job_message(nc, b"not json", headers, seq=7)
    settler, writer = await _settler(nc)
    exc = EnvelopeError("not JSON")
    outcome = refused(msg, exc, ("abc123" if job_id_readable else None, ""), 1, "h:1")
    await settler.settle(msg, None, outcome)
    await writer.stop()
    # Filed under its id when it has one (its producer may wait on it), else its sequence.
    want = ["bury", "store", "notify", "term"] if job_id_readable else ["bury", "term"]
    assert nc.steps("abc123" if job_id_readable else "seq-7") == want
    assert outcome.entry.id == ("abc123" if job_id_readable else "seq-7")
    assert settler.failed == 1


async def test_hand_back_naks_without_an_outcome() -> None:
    nc = FakeNats()
    env, payload, headers = _job(None, True)
    msg = job_message(nc, payload, headers)
    settler, writer = await _settler(nc)
    await settler.settle(msg, env, HANDED_BACK)
    await writer.stop()
    assert nc.steps(env.id) == ["nak"]
    assert (settler.done, settler.failed, settler.cancelled) == (0, 0, 0)


@pytest.mark.parametrize(
    ("decider", "attempt", "failing"),
    [
        (_ran(3), 1, "naqd_results"),  # the result record
        (_ran(exc=RuntimeError("x")), 1, "naqd_results"),  # the retrying record
        (_ran(exc=RuntimeError("x")), 3, "naqd.dlq."),  # the dead-letter entry
        (_ran(exc=RuntimeError("x")), 3, "naqd_results"),  # the dead job's record
    ],
)
async def test_a_failed_store_leaves_the_job_unacked(
    decider: Decider, attempt: int, failing: str
) -> None:
    """The store is the point of no return: when it fails, settle raises before anything
    is announced or acked, so the job is delivered again (docs/delivery.md)."""
    nc = FakeNats(fail=lambda subject: failing in subject)
    env, payload, headers = _job(None, True)
    nc.js.kv_data[UNIQUE_BUCKET] = {LOCK: json.dumps({"job_id": env.id}).encode()}
    msg = job_message(nc, payload, headers, delivered=attempt)
    settler, writer = await _settler(nc, deadline=0.3)
    with pytest.raises(TimeoutError):
        await settler.settle(msg, env, decider(msg, env, _base(env, attempt)))
    await writer.stop()
    steps = nc.steps(env.id)
    assert not {"notify", "ack", "nak", "term", "unlock"} & set(steps), steps


async def _settler(nc: FakeNats, deadline: float = 5.0) -> tuple[Settler, StreamWriter]:
    writer = StreamWriter(nc)  # type: ignore[arg-type]
    await writer.start()
    observe = JobObserver("q")
    return Settler(nc, writer, None, "host:1", deadline, observe), writer  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("decider", "attempt", "hook", "applied"),
    [
        (_ran(3), 1, "on_success", ["store", "notify", "ack"]),
        (_ran(exc=RuntimeError("x")), 1, "on_retry", ["store", "nak"]),
        (_ran(exc=RuntimeError("x")), 3, "on_dead_letter", ["bury", "store", "notify", "term"]),
        (_ran(exc=RuntimeError("c"), cancelled=True), 1, "on_cancel", ["store", "notify", "ack"]),
    ],
)
async def test_outcome_hooks_run_once_the_outcome_is_applied(
    decider: Decider, attempt: int, hook: str, applied: list[str]
) -> None:
    """A hook sees the job settled already; one that raises changes nothing after it."""
    from naqd.middleware import Hooks, job_info, set_error_reporter

    nc = FakeNats()
    env, payload, headers = _job(None, False)
    msg = job_message(nc, payload, headers, delivered=attempt)
    seen: list[tuple[str, list[str]]] = []

    class Watch:
        def __getattr__(self, name: str) -> Any:
            if not name.startswith("on_"):
                raise AttributeError(name)

            def hook(*args: Any) -> None:
                seen.append((name, nc.steps(env.id)))
                raise RuntimeError(f"{name} fails")

            return hook

    reported: list[str] = []
    set_error_reporter(lambda h, mw, exc: reported.append(h))
    try:
        settler, writer = await _settler(nc)
        settler.hooks = Hooks([Watch()])
        job = job_info(env.id, env.task, env.queue, attempt, headers)
        await settler.settle(msg, env, decider(msg, env, _base(env, attempt)), job)
        await writer.stop()
    finally:
        set_error_reporter(None)
    assert seen == [(hook, applied)]
    assert nc.steps(env.id) == applied  # nothing after the hook either
    assert reported == [hook]
