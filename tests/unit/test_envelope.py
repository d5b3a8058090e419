from __future__ import annotations

import json

import pytest

from naqd.protocol.envelope import (
    Envelope,
    EnvelopeError,
    ErrorInfo,
    ResultRecord,
    decode_job,
    decode_result,
    encode_job,
    encode_result,
    validate_job_id,
    validate_option,
    validate_queue,
    validate_task,
)


def test_json_round_trip() -> None:
    env = Envelope(id="j1", task="m:f", queue="q", args=(1, "x"), kwargs={"k": [1]}, retries=2)
    data = encode_job(env)
    assert json.loads(data) == {
        "id": "j1", "task": "m:f", "queue": "q", "args": [1, "x"], "kwargs": {"k": [1]},
        "enqueued_at": 0.0, "retries": 2, "v": 1,
    }  # fmt: skip
    assert decode_job(data) == env


def test_pickle_round_trip_carries_any_value() -> None:
    env = Envelope(id="j1", task="m:f", queue="q", args=({1, 2},))
    assert decode_job(encode_job(env, "pickle"), "pickle") == env


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\x00", "cannot decode"),
        (b"[1]", "not an object"),
        (b'{"task": "m:f", "queue": "q"}', "'id'"),
        (b'{"id": "a", "task": "nocolon", "queue": "q"}', "invalid task name"),
        (b'{"id": "a", "task": "m:f", "queue": "q", "args": {}}', "args must be a list"),
        (b'{"id": "a", "task": "m:f", "queue": "q", "v": 9}', "unsupported envelope version"),
        (b'{"id": "a", "task": "m:f", "queue": "q", "retries": -1}', "non-negative integer"),
        (b'{"id": "a", "task": "m:f", "queue": "q", "timeout": "x"}', "non-negative number"),
    ],
)
def test_bad_payloads_raise_envelope_error(payload: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        decode_job(payload)


def test_unknown_encoding_is_an_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="unknown encoding"):
        decode_job(b"{}", "xml")


def test_non_json_args_rejected_with_task_name() -> None:
    with pytest.raises(TypeError, match=r"cannot enqueue m:f: args\[0\]: a object value"):
        encode_job(Envelope(id="j", task="m:f", queue="q", args=(object(),)))


@pytest.mark.parametrize("job_id", ["a", "A-b_c.d=e", "x" * 200])
def test_valid_job_ids(job_id: str) -> None:
    assert validate_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", ["", "a b", "a*b", "a>b", "x" * 201])
def test_invalid_job_ids(job_id: str) -> None:
    with pytest.raises(ValueError, match="invalid job_id"):
        validate_job_id(job_id)


def test_result_round_trip_with_error() -> None:
    rec = ResultRecord(id="j", status="failed", error=ErrorInfo("E", "m", "tb"), attempts=3)
    assert decode_result(encode_result(rec)) == rec
    assert decode_result(encode_result(rec)).done


def _general(rec: ResultRecord) -> bytes:
    """What encode_result wrote before its plain-record fast path: the reference."""
    d = {
        "id": rec.id,
        "status": rec.status,
        "result": rec.result,
        "attempts": rec.attempts,
        "task": rec.task,
        "queue": rec.queue,
        "enqueued_at": rec.enqueued_at,
        "started_at": rec.started_at,
        "finished_at": rec.finished_at,
        "worker": rec.worker,
        "encoding": rec.encoding,
    }
    return json.dumps(d, separators=(",", ":"), allow_nan=False).encode()


_T = {"enqueued_at": 1764963123.125, "started_at": 1764963124.5, "finished_at": 1.0e9}


@pytest.mark.parametrize(
    "rec",
    [
        ResultRecord(id="a.b=c", status="succeeded", attempts=1, task="m:f", queue="q", **_T),
        ResultRecord(id="j", status="succeeded", result={"k": [1, 2.5, 'x"y']}, **_T),
        ResultRecord(id="j", status="succeeded", result="caf\u00e9 \u2603", worker='h"\\:1', **_T),
        ResultRecord(id="j", status="cancelled", task="m\u00e9:f", queue="q\n", **_T),
        ResultRecord(id="j", status="succeeded", result=10**30, attempts=7, **_T),
        # Not handled by the fast path (the general one decides): None, int and odd times.
        ResultRecord(id="j", status="succeeded", enqueued_at=5, started_at=None),
        ResultRecord(id="j", status="succeeded", enqueued_at=1.0, started_at=2.0, finished_at=3),
    ],
)
def test_plain_records_encode_to_the_bytes_of_the_general_encoder(rec: ResultRecord) -> None:
    assert encode_result(rec) == _general(rec)
    assert decode_result(encode_result(rec)) == rec


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_record_time_that_is_not_finite_is_refused_as_before(bad: float) -> None:
    rec = ResultRecord(id="j", status="succeeded", enqueued_at=bad, started_at=1.0, finished_at=2.0)
    with pytest.raises(TypeError, match="not JSON-serializable"):
        encode_result(rec)


def test_an_unencodable_result_is_refused_by_the_fast_path_too() -> None:
    rec = ResultRecord(id="j", status="succeeded", result={1, 2}, **_T)
    with pytest.raises(TypeError, match="task result is not JSON-serializable"):
        encode_result(rec)
    nan = ResultRecord(id="j", status="succeeded", result=float("nan"), **_T)
    with pytest.raises(TypeError, match="task result is not JSON-serializable"):
        encode_result(nan)


def test_pickled_result_needs_opt_in() -> None:
    rec = ResultRecord(id="j", status="succeeded", result={1, 2}, encoding="pickle")
    data = encode_result(rec)
    with pytest.raises(ValueError, match="allow_pickle"):
        decode_result(data)
    assert decode_result(data, allow_pickle=True).result == {1, 2}


@pytest.mark.parametrize("job_id", [".lead", "trail.", "x..y", "a.b*"])
def test_job_ids_must_be_valid_kv_keys(job_id: str) -> None:
    with pytest.raises(ValueError, match="invalid job_id"):
        validate_job_id(job_id)


def test_decode_rejects_ids_and_queues_that_cannot_be_subjects() -> None:
    with pytest.raises(EnvelopeError, match="invalid job_id"):
        decode_job(b'{"id": "a b", "task": "m:f", "queue": "q"}')
    with pytest.raises(EnvelopeError, match="invalid queue"):
        decode_job(b'{"id": "a", "task": "m:f", "queue": "q.x"}')


@pytest.mark.parametrize(
    ("check", "value"),
    [(validate_task, "add"), (validate_queue, "a.b"), (validate_queue, "")],
)
def test_client_side_validation(check, value) -> None:
    with pytest.raises(ValueError):
        check(value)


def test_options_must_be_non_negative() -> None:
    assert validate_option("timeout", None) is None
    assert validate_option("timeout", 0) == 0
    with pytest.raises(ValueError, match="result_ttl must be a number >= 0"):
        validate_option("result_ttl", -1)


def test_signed_pickled_result_loads_only_with_a_matching_key() -> None:
    from naqd.protocol.signing import Keyring, SignatureError

    ring = Keyring.from_keys("w" * 40)
    rec = ResultRecord(id="j", status="succeeded", result={1, 2}, encoding="pickle")
    data = encode_result(rec, ring)
    assert decode_result(data, allow_pickle=True, keyring=ring).result == {1, 2}
    with pytest.raises(SignatureError, match="unknown key id"):
        decode_result(data, allow_pickle=True, keyring=Keyring.from_keys("x" * 40))
    with pytest.raises(SignatureError, match="not signed"):
        decode_result(encode_result(rec), allow_pickle=True, keyring=ring)


@pytest.mark.parametrize("field", ["task", "queue"])
@pytest.mark.parametrize("bad", [["x"], {"a": 1}, 3, None])
def test_unhashable_or_odd_names_are_envelope_errors(field: str, bad: object) -> None:
    raw = {"v": 1, "id": "j1", "task": "m:f", "queue": "q", "args": [], "kwargs": {}}
    raw[field] = bad
    with pytest.raises(EnvelopeError):
        decode_job(json.dumps(raw).encode())


def test_a_name_is_checked_again_after_a_good_one() -> None:
    good = {"v": 1, "id": "j1", "task": "m:f", "queue": "q", "args": [], "kwargs": {}}
    assert decode_job(json.dumps(good).encode()).task == "m:f"
    with pytest.raises(EnvelopeError):
        decode_job(json.dumps({**good, "task": "m:f bad"}).encode())
    with pytest.raises(EnvelopeError):
        decode_job(json.dumps({**good, "queue": "q.x"}).encode())


# --- one behaviour for every producer (issue 14) -----------------------------------------

_SHORT = {"id": "a", "task": "m:f", "queue": "q"}


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        # Options are read however few fields the envelope has.
        ({"retry_on": ["ValueError"]}, "retry_on", ("ValueError",)),
        ({"dont_retry_on": ["KeyError"]}, "dont_retry_on", ("KeyError",)),
        ({"backoff": [1, 2]}, "backoff", [1.0, 2.0]),
        ({"retries": 2, "retry_on": ["ValueError"]}, "retry_on", ("ValueError",)),
        # null means absent, for every optional field.
        ({"args": None}, "args", ()),
        ({"kwargs": None}, "kwargs", {}),
        ({"v": None}, "v", 1),
        ({"v": 1.0}, "v", 1),
        ({"backoff": None, "retry_on": None, "retries": None}, "retry_on", None),
        ({"enqueued_at": None}, "enqueued_at", 0.0),
    ],
)
def test_short_envelopes_and_nulls(extra: dict, field: str, expected: object) -> None:
    env = decode_job(json.dumps({**_SHORT, **extra}).encode())
    assert getattr(env, field) == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"backoff": "soon"}, "backoff: expected a mapping"),
        ({"retry_on": "not a name!"}, "exception class name"),
        ({"dont_retry_on": 5}, "list of exception names"),
        ({"v": "1"}, r"unsupported envelope version '1' \(the number 1, not a string\)"),
        ({"v": True}, "unsupported envelope version True"),
        ({"v": 2}, "unsupported envelope version 2"),
        ({"args": "x"}, "args must be a list"),
        ({"kwargs": []}, "kwargs must be an object"),
        ({"id": "x" * 201}, "invalid job_id"),
    ],
)
def test_short_envelopes_are_checked(extra: dict, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        decode_job(json.dumps({**_SHORT, **extra}).encode())


@pytest.mark.parametrize(
    ("payload", "job_id", "task"),
    [
        ({**_SHORT, "args": "x"}, "a", "m:f"),  # readable id and task: the job is named
        ({**_SHORT, "task": "nocolon"}, "a", "nocolon"),
        ({**_SHORT, "id": "x" * 201}, None, "m:f"),  # not a usable id: no record
        ({**_SHORT, "id": "a b"}, None, "m:f"),
        ({**_SHORT, "task": 5, "v": 9}, "a", ""),
        ({"task": "m:f"}, None, "m:f"),
    ],
)
def test_a_refused_envelope_still_names_its_job(payload: dict, job_id: object, task: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_job(json.dumps(payload).encode())
    assert (info.value.job_id, info.value.task) == (job_id, task)


def test_an_unreadable_payload_names_no_job() -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_job(b'{"id": "a", ')
    assert (info.value.job_id, info.value.task) == (None, "")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"id":"a","task":"m:f","queue":"q"}', True),
        (' \n{"id":"a","task":"m:f","queue":"q"}\n ', True),  # whitespace around: the decoder
        ('{"id":"a","task":"m:f","queue":"q"} x', False),  # trailing garbage
        ('{"id":"a","task":"m:f","queue":"q"}{}', False),
        ("", False),
        ('{"id":"a",', False),
    ],
)
def test_job_json_is_read_whole_or_refused(text: str, ok: bool) -> None:
    if ok:
        assert decode_job(text.encode()).id == "a"
    else:
        with pytest.raises(EnvelopeError, match="cannot decode job payload"):
            decode_job(text.encode())
