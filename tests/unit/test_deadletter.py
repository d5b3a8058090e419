from __future__ import annotations

import json

from naqd.protocol.deadletter import DeadLetter, decode_dead_letter, encode_dead_letter
from naqd.protocol.envelope import ErrorInfo
from naqd.worker.deadletter import entry_id, kept_headers, queue_of


def entry(payload: bytes) -> DeadLetter:
    err = ErrorInfo("ValueError", "boom", "Traceback ...")
    return DeadLetter(
        id="j1",
        queue="q",
        reason="failed",
        error=err,
        errors=(ErrorInfo("OSError", "first"), err),
        subject="naqd.jobs.q",
        payload=payload,
        headers={"Naqd-Encoding": "json"},
        attempts=2,
        task="m:f",
        stream_seq=7,
        dead_at=123.0,
        worker="h:1",
    )


def test_json_payload_round_trips_as_readable_text() -> None:
    original = entry(b'{"id":"j1","task":"m:f","queue":"q"}')
    data = encode_dead_letter(original)
    assert json.loads(data)["payload_encoding"] == "text"
    assert decode_dead_letter(data, seq=5) == DeadLetter(**{**original.__dict__, "seq": 5})


def test_binary_payload_round_trips_as_base64() -> None:
    original = entry(b"\x00\xff\x80pickle")
    data = encode_dead_letter(original)
    assert json.loads(data)["payload_encoding"] == "base64"
    assert decode_dead_letter(data).payload == b"\x00\xff\x80pickle"


def test_text_that_is_not_json_is_stored_as_base64_and_kept_exact() -> None:
    assert decode_dead_letter(encode_dead_letter(entry(b"plain words"))).payload == b"plain words"


def test_summary_names_the_error() -> None:
    s = entry(b"{}").summary()
    assert s["error"] == "ValueError: boom" and s["attempts"] == 2 and s["reason"] == "failed"


def test_entry_ids_headers_and_queues() -> None:
    assert entry_id("job-1.a", 9) == "job-1.a"
    assert entry_id(None, 9) == "seq-9"
    assert entry_id("bad id with spaces", 9) == "seq-9"
    assert kept_headers({"Naqd-Encoding": "pickle", "Nats-Msg-Id": "x", "Other": "y"}) == {
        "Naqd-Encoding": "pickle",
        "Nats-Msg-Id": "x",
    }
    assert queue_of("naqd.jobs.emails") == "emails"
    assert queue_of("elsewhere.x") == "unknown"
