"""The scheduler's decisions, pure: the missed-tick policy and a tick's jitter. When a
schedule fires (Trigger) and a tick's job id live in naqd/protocol/ticks.py, shared
with the client. All instants are aware UTC datetimes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from naqd.protocol.ticks import Trigger

# A tick fired within this long after its time is on time; later it counts as missed.
MISFIRE_GRACE = 2.0

Missed = Literal["skip", "run_once"]


@dataclass(frozen=True)
class Decision:
    """What a scheduler does for one schedule now: fire `tick` (or not) and move the
    cursor (the last tick dealt with) to `cursor`."""

    tick: datetime | None
    cursor: datetime
    skipped: bool = False  # a due tick was dropped by `missed: skip`


def decide(
    trigger: Trigger,
    cursor: datetime,
    now: datetime,
    missed: Missed,
    grace: float = MISFIRE_GRACE,
) -> Decision:
    """The missed-tick policy. Only the latest due tick can fire: never a burst.

    - on time (fired within `grace` of its time): fire it;
    - late (no scheduler ran, or the leader changed): `run_once` fires it once as the
      catch-up, `skip` drops it and waits for the next one.
    Earlier due ticks between `cursor` and the latest are dropped either way.
    """
    latest = trigger.latest_at_or_before(now, since=cursor)
    if latest <= cursor:
        return Decision(None, cursor)
    late = (now - latest).total_seconds()
    if late <= grace or missed == "run_once":
        return Decision(latest, latest)
    return Decision(None, latest, skipped=True)


def jitter_offset(name: str, tick: datetime, jitter: float) -> float:
    """A delay in [0, jitter) that every host computes alike for the same tick."""
    if jitter <= 0:
        return 0.0
    digest = hashlib.sha256(f"{name}|{tick.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * jitter
