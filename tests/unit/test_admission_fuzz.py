"""Hostile input at the job decoder: arbitrary bytes, headers and mutated envelopes.
Every input is either a valid, allowed Envelope or a JobRejected with a reason; nothing
else escapes, nothing hangs (hypothesis' per-example deadline)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naqd.protocol.envelope import Envelope, encode_job, validate_job_id
from naqd.protocol.names import HDR_ENCODING, HDR_SIGNATURE
from naqd.protocol.signing import Keyring
from naqd.worker.admission import AdmissionPolicy, JobRejected, TaskAllowList, admit

KEY = "fuzz-key-" + "0" * 32
ALLOWED = TaskAllowList.build(["tests.tasks"], [])
POLICIES = [
    AdmissionPolicy(allowed=ALLOWED, queue="default", max_payload=4096),
    AdmissionPolicy(
        serializer="pickle",
        keyring=Keyring.from_keys(KEY),
        allowed=ALLOWED,
        queue="default",
        max_payload=4096,
    ),
    AdmissionPolicy(
        keyring=Keyring.from_keys(KEY), require_signed_json=True, allowed=ALLOWED, max_payload=4096
    ),
]
REASONS = {
    "too large",
    "bad encoding",
    "pickle refused",
    "bad signature",
    "malformed",
    "wrong queue",
    "task not allowed",
    "id mismatch",
}
FUZZ = settings(max_examples=200, deadline=500, suppress_health_check=[HealthCheck.too_slow])

headers_st = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from([HDR_ENCODING, HDR_SIGNATURE, "Nats-Msg-Id", "X"]),
        st.one_of(st.sampled_from(["json", "pickle", ""]), st.text(max_size=80)),
        max_size=3,
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def check(data: bytes, headers: dict[str, str] | None, policy: AdmissionPolicy) -> None:
    try:
        env = admit(data, headers, policy)
    except JobRejected as exc:
        assert exc.reason in REASONS, exc
        assert exc.job_id is None or validate_job_id(exc.job_id)  # only usable ids are named
        return
    assert isinstance(env, Envelope) and ALLOWED.allows(env.task)
    assert policy.queue is None or env.queue == policy.queue


@FUZZ
@given(data=st.binary(max_size=6000), headers=headers_st, which=st.integers(0, 2))
def test_arbitrary_bytes(data: bytes, headers: dict[str, str] | None, which: int) -> None:
    check(data, headers, POLICIES[which])


def _valid() -> bytes:
    return encode_job(Envelope(id="j", task="tests.tasks:add", queue="default", args=(1, 2)))


@FUZZ
@given(
    cuts=st.lists(st.tuples(st.integers(0, 200), st.binary(max_size=8)), max_size=6),
    headers=headers_st,
    which=st.integers(0, 2),
)
def test_mutated_envelope_bytes(
    cuts: list[tuple[int, bytes]], headers: dict[str, str] | None, which: int
) -> None:
    data = bytearray(_valid())
    for pos, patch in cuts:
        pos %= len(data) + 1
        data[pos : pos + len(patch)] = patch
    check(bytes(data), headers, POLICIES[which])


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(
            ["v", "id", "task", "queue", "args", "kwargs", "retries", "timeout", "result_ttl",
             "enqueued_at", "extra"]
        ),
        json_values | st.sampled_from(["tests.tasks:add", "os:system", "default", 1]),
        max_size=10,
    ),
    sign=st.booleans(),
    which=st.integers(0, 2),
)  # fmt: skip
def test_mutated_envelope_fields(fields: dict[str, object], sign: bool, which: int) -> None:
    base = json.loads(_valid())
    base.update(fields)
    data = json.dumps(base).encode()
    headers = {HDR_SIGNATURE: Keyring.from_keys(KEY).sign(data)} if sign else None
    check(data, headers, POLICIES[which])
