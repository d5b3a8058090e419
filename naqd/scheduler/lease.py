"""The leader lease as a pure state machine fed with monotonic times, so the safety rule
is testable without a server (docs/jetstream.md#the-leader-lease).

The rule: a leader stops leading on its *own* clock once `step_down_after` has passed
since it *sent* the last renewal that was confirmed, whether or not an error ever
arrives (in a partition none does). The KV key expires `lease` after the server stored
that renewal, which is later than it was sent, so the old leader has stopped before a
new one can win. A new leader waits `renew_every` before its first fire.
"""

from __future__ import annotations

from dataclasses import dataclass

STEP_DOWN_FRACTION = 0.75  # of the lease; config requires renew_every <= lease / 2


@dataclass
class Lease:
    lease: float
    renew_every: float
    revision: int | None = None  # KV revision of our last confirmed write (fencing token)
    confirmed_sent_at: float = 0.0  # when that write was sent
    won_at: float = 0.0

    @property
    def step_down_after(self) -> float:
        return self.lease * STEP_DOWN_FRACTION

    def held(self, now: float) -> bool:
        """We hold the lease: a confirmed write sent less than step_down_after ago."""
        return self.revision is not None and now - self.confirmed_sent_at < self.step_down_after

    def may_fire(self, now: float) -> bool:
        """Leading and past the grace a new leader waits before its first fire."""
        return self.held(now) and now - self.won_at >= self.renew_every

    def won(self, sent_at: float, revision: int) -> None:
        """Our `create` (sent at `sent_at`) succeeded."""
        self.revision, self.confirmed_sent_at, self.won_at = revision, sent_at, sent_at

    def renewed(self, sent_at: float, revision: int) -> None:
        """Our `update(last=revision)` sent at `sent_at` succeeded. A confirmation that
        arrives after we stepped down is ignored: the grace starts over via `won`."""
        if self.held(sent_at):
            self.revision, self.confirmed_sent_at = revision, max(sent_at, self.confirmed_sent_at)

    def lost(self) -> None:
        """Someone else holds the key (wrong last sequence), or we released it."""
        self.revision = None

    def expired(self, now: float) -> bool:
        """We held the lease and our own clock says it is gone: forget the revision."""
        if self.revision is not None and not self.held(now):
            self.revision = None
            return True
        return False

    def due(self, now: float, last_attempt: float) -> bool:
        """Time to renew (or campaign) again."""
        return now - last_attempt >= self.renew_every
