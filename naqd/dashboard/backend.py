"""The console's one door to NATS: the client's explorer (reads), actions (each audited)
and change feeds (naqd/client/). Nothing here talks to NATS itself, so the console and
the CLI never disagree about what a job's state is or what a requeue does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from naqd.dashboard.auth import Principal

if TYPE_CHECKING:
    from naqd.client.actions import Actions
    from naqd.client.audit import AuditLog
    from naqd.client.client import Client
    from naqd.client.explore import Explorer


def explorer(client: Client) -> Explorer:
    """The client's one explorer, whose id index of queued jobs the console started."""
    return client.explorer


def actions(client: Client, who: Principal, via: str) -> Actions:
    """Actions recorded in the audit trail as `who.actor`, via "console" or "api"."""
    from naqd.client.actions import Actions

    return Actions(client, actor=who.actor, via=via)


def audit(client: Client) -> AuditLog:
    from naqd.client.audit import AuditLog

    return AuditLog(client.nc)


def dead_letter_filter(
    queue: str | None, task: str | None, error_type: str | None, reason: str | None, every: bool
) -> Any:
    from naqd.client.actions import DeadLetterFilter

    return DeadLetterFilter(
        queue=queue or None,
        task=task or None,
        error_type=error_type or None,
        reason=reason or None,
        all=every,
    )


async def changes(client: Client) -> AsyncIterator[dict[str, Any]]:
    """Every change the client's feed hears, as the console's SSE events."""
    from naqd.client.feeds import EventFeed

    async with EventFeed(client.nc) as feed:
        async for event in feed:
            yield {"type": event.kind, "key": event.key, "data": event.data, "at": event.at}
