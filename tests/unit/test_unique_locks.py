"""The unique lock's create at the instant its previous holder's TTL ends.

nats-py's `kv.create`, refused because the key exists, reads the key to tell a deleted
one from a live one; when the lock expires between the two, that read raises
KeyNotFoundError. A throttle enqueue at the window's very end failed with it (seen in a
full run of tests/inproc/test_unique_modes.py). The fake bucket below replays that
interleaving exactly, which a real server only does by chance.
"""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.errors import KeyNotFoundError

from naqd.client.unique import claim


class ExpiringLock:
    """A bucket whose lock expires during the first create: the create is refused, and
    nats-py's check finds the key gone."""

    def __init__(self) -> None:
        self.creates = 0
        self.value: bytes | None = None

    async def create(self, key: str, value: bytes, msg_ttl: float | None = None) -> int:
        self.creates += 1
        if self.creates == 1:
            raise KeyNotFoundError  # what nats-py's create raises in that interleaving
        self.value = value
        return self.creates

    async def get(self, key: str) -> Any:
        raise KeyNotFoundError  # expired


class JetStream:
    def __init__(self, kv: ExpiringLock) -> None:
        self.kv = kv

    async def key_value(self, bucket: str) -> ExpiringLock:
        return self.kv


@pytest.mark.parametrize("mode", ["throttle", "until_done", "debounce", "latest"])
async def test_a_lock_expiring_during_create_is_taken_not_an_error(mode: str) -> None:
    kv = ExpiringLock()
    got = await claim(JetStream(kv), "report-7", "job-2", mode=mode, window=2, queue="default")
    assert got.job_id == "job-2" and got.created
    assert kv.creates == 2 and kv.value is not None and b"job-2" in kv.value
