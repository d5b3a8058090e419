"""Client.build_many: the same messages as build() per call, checked once per batch."""

from __future__ import annotations

import json

import pytest

from naqd.client.client import Client
from naqd.protocol.envelope import decode_job
from naqd.protocol.signing import Keyring


def _strip(payload: bytes) -> dict:
    d = json.loads(payload)
    d.pop("id"), d.pop("enqueued_at")
    return d


def test_each_call_gets_its_own_id_and_arguments_and_the_rest_is_build() -> None:
    c = Client("nats://x")
    calls = [(1, 2), ("a", [1, {"b": None}]), ()]
    many = c.build_many("m:f", calls, queue="q", retries=3, result_ttl=60, priority=None)
    single = [c.build("m:f", args, {}, queue="q", retries=3, result_ttl=60) for args in calls]
    assert [m[0] for m in many] == [s[0] for s in single]  # subjects
    assert [_strip(m[1]) for m in many] == [_strip(s[1]) for s in single]
    ids = [decode_job(m[1]).id for m in many]
    assert len(set(ids)) == 3
    assert [m[2]["Nats-Msg-Id"] for m in many] == ids
    assert [decode_job(m[1]).args for m in many] == [(1, 2), ("a", [1, {"b": None}]), ()]


def test_a_bad_argument_in_a_later_call_is_refused() -> None:
    c = Client("nats://x")
    with pytest.raises(TypeError, match="JSON cannot carry"):
        c.build_many("m:f", [(1,), ({1, 2},)], queue="q")
    with pytest.raises(TypeError, match="JSON cannot carry"):
        c.build_many("m:f", [(1,), (float("nan"),)], queue="q")


def test_signed_json_batches_sign_every_message() -> None:
    ring = Keyring.from_keys("k1:" + "s" * 32)
    c = Client("nats://x", signing_key=ring)
    for _, payload, headers in c.build_many("m:f", [(1,), (2,)], queue="q"):
        ring.verify(payload, headers["Naqd-Signature"], "json")


def test_nothing_to_build() -> None:
    assert Client("nats://x").build_many("m:f", [], queue="q") == []
