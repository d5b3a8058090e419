"""Argument checks against a task's signature, cached by the shape of the call."""

from __future__ import annotations

import pytest

from naqd.protocol.ackreply import num_delivered
from naqd.worker.tasks import BadArguments, check_arguments


def add(a: int, b: int = 0, *, scale: int = 1) -> int:
    return (a + b) * scale


@pytest.mark.parametrize("_round", [1, 2])  # the second round is served from the cache
def test_fitting_and_unfitting_shapes(_round: int) -> None:
    check_arguments("t:add", add, (1,), {})
    check_arguments("t:add", add, (1, 2), {"scale": 3})
    check_arguments("t:add", add, (), {"a": 1, "b": 2})
    with pytest.raises(BadArguments, match="missing a required argument"):
        check_arguments("t:add", add, (), {})
    with pytest.raises(BadArguments, match="too many positional"):
        check_arguments("t:add", add, (1, 2, 3), {})
    with pytest.raises(BadArguments, match="unexpected keyword"):
        check_arguments("t:add", add, (1,), {"nope": 1})


def test_the_same_shape_of_another_task_is_checked_on_its_own() -> None:
    def one(a: int) -> int:
        return a

    check_arguments("t:add2", add, (1, 2), {})
    with pytest.raises(BadArguments):
        check_arguments("t:one", one, (1, 2), {})


@pytest.mark.parametrize(
    ("reply", "delivered"),
    [
        ("$JS.ACK.NAQD_JOBS.q-default.3.1045.1020.1732780000000000000.7", 3),
        ("$JS.ACK.hub.AAHASH.NAQD_JOBS.q-default.2.1045.1020.1732780000000000000.7.rnd", 2),
    ],
)
def test_delivery_count_from_both_ack_subject_forms(reply: str, delivered: int) -> None:
    assert num_delivered(reply) == delivered


@pytest.mark.parametrize("reply", ["", "_INBOX.abc", "$JS.ACK.a.b.c", "$JS.ACK.s.c.x.1.1.1.0"])
def test_other_subjects_are_refused(reply: str) -> None:
    with pytest.raises(ValueError):
        num_delivered(reply)
