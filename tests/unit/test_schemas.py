"""The JSON Schemas in docs/schemas/ describe what naqd writes and what a worker accepts:
the client's envelopes, result records and dead-letter entries validate, and the schema
and the worker's decoder agree on every envelope in the table."""

from __future__ import annotations

import json

import pytest

from naqd.client import Client
from naqd.protocol.deadletter import DeadLetter, encode_dead_letter
from naqd.protocol.envelope import EnvelopeError, ErrorInfo, ResultRecord, decode_job, encode_result
from tests.schemas import assert_valid, errors

OPTIONS: list[dict[str, object]] = [
    {},
    {"retries": 0, "timeout": 2.5, "result_ttl": 0},
    {"backoff": [1, 5, 60], "retry_on": [ValueError], "dont_retry_on": ["pkg.mod.Error"]},
    {"backoff": {"strategy": "linear", "base": 2, "max": 30, "jitter": 0.5}},
    {"job_id": "order-42.v2", "priority": "high"},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_what_the_python_client_sends_is_a_valid_envelope(options: dict[str, object]) -> None:
    client = Client("nats://127.0.0.1:1")  # build() is pure: nothing connects
    _, payload, headers = client.build("tests.tasks:add", (1, 2), {"k": [None]}, **options)
    assert_valid("envelope", payload)
    assert headers["Nats-Msg-Id"] == json.loads(payload)["id"]


_BASE = {"id": "a", "task": "m:f", "queue": "q"}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"v": 1},
        {"v": None, "args": None, "kwargs": None, "enqueued_at": None},
        {"v": 1.0, "retries": 2.0},
        {"retries": 2, "retry_on": ["ValueError"]},
        {"backoff": [0.5]},
        {"backoff": {}},
        {"unknown_field": {"ignored": True}},
        {"id": "x" * 200},
        # refused
        {"v": "1"},
        {"v": True},
        {"v": 2},
        {"args": "x"},
        {"kwargs": []},
        {"retries": -1},
        {"retries": 1.5},
        {"timeout": "5"},
        {"backoff": "soon"},
        {"backoff": []},
        {"backoff": {"strategy": "random"}},
        {"backoff": {"jitter": 2}},
        {"retry_on": ["not a name"]},
        {"id": "x" * 201},
        {"id": "a..b"},
        {"id": ""},
        {"task": "nocolon"},
        {"queue": "a.b"},
    ],
)
def test_the_schema_and_the_worker_agree(extra: dict[str, object]) -> None:
    doc = {**_BASE, **extra}
    try:
        decode_job(json.dumps(doc).encode())
        accepted = True
    except EnvelopeError:
        accepted = False
    assert accepted == (not errors("envelope", doc)), (doc, errors("envelope", doc))


ERR = ErrorInfo("RuntimeError", "boom", "Traceback ...")


@pytest.mark.parametrize(
    "record",
    [
        ResultRecord(id="j", status="running", task="m:f", queue="q", started_at=1.0),
        ResultRecord(id="j", status="succeeded", result={"a": [1]}, attempts=1, finished_at=2.0),
        ResultRecord(id="j", status="retrying", error=ERR, errors=(ERR,), attempts=1),
        ResultRecord(id="j", status="failed", error=ERR, errors=(ERR, ERR), attempts=2),
        ResultRecord(id="j", status="cancelled", progress=0.5, progress_message="half"),
        ResultRecord(id="j", status="succeeded", result={1, 2}, encoding="pickle"),
    ],
)
def test_result_records_are_valid(record: ResultRecord) -> None:
    assert_valid("result", encode_result(record))


@pytest.mark.parametrize("payload", [b'{"id":"j"}', b"\x00\xffnot json", b"plain text"])
def test_dead_letter_entries_are_valid(payload: bytes) -> None:
    entry = DeadLetter(
        id="j",
        queue="q",
        reason="unreadable",
        error=ERR,
        errors=(ERR,),
        subject="naqd.jobs.q",
        payload=payload,
        headers={"Nats-Msg-Id": "j"},
        stream_seq=7,
    )
    assert_valid("deadletter", encode_dead_letter(entry))
