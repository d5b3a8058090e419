"""When a consumer no longer matches its stream (after a power cut): pure decision."""

from __future__ import annotations

import pytest

from naqd.protocol.resources import stale_consumer


@pytest.mark.parametrize(
    ("last_seq", "delivered", "ack_floor", "stale"),
    [
        (0, 0, 0, False),  # a new stream and consumer
        (100, 100, 100, False),  # everything delivered and acked
        (100, 100, 40, False),  # jobs in flight
        (150, 100, 100, False),  # jobs waiting
        (0, 100, 100, True),  # the stream's messages were lost, the consumer's state kept
        (50, 100, 100, True),  # part of them
        (50, 100, 0, True),  # delivered past the end, nothing acked
    ],
)
def test_a_position_past_the_streams_end_is_stale(
    last_seq: int, delivered: int, ack_floor: int, stale: bool
) -> None:
    why = stale_consumer(last_seq, delivered, ack_floor)
    assert bool(why) is stale
    if stale:
        assert str(last_seq) in why
