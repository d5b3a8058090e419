"""The audit trail: append one entry per operator action and list them (`naqd audit`,
the console's audit page). Entries live in the NAQD_AUDIT stream; the daemon applies
the configured retention, and a client that finds no stream creates it with the
defaults (replicated like the jobs stream), so an action taken before any daemon ran is
still recorded."""

from __future__ import annotations

import getpass
import logging
import socket
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from naqd.client.batchget import fetch_range
from naqd.client.faults import guarded
from naqd.client.pages import STOP, Page, Stop, parse_cursor, walk_back
from naqd.protocol.audit import AuditEntry, audit_stream_config, decode_entry, encode_entry
from naqd.protocol.names import (
    AUDIT_STREAM,
    AUDIT_SUBJECT_PREFIX,
    JOBS_STREAM,
    audit_subject,
    under,
)

log = logging.getLogger("naqd.audit")


def cli_actor() -> str:
    """Who runs the CLI: `cli:<user>@<host>`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


@guarded
class AuditLog:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self._ready = False

    async def append(self, entry: AuditEntry) -> bool:
        """Store and log one entry; False (logged) when NATS did not take it: the action
        itself already happened and is not undone for want of its record."""
        log.info(
            "audit: %s %s %s by %s: %s %s",
            entry.via or "-", entry.action, entry.target, entry.actor, entry.result,
            entry.detail or "",
        )  # fmt: skip
        data = encode_entry(entry)
        for _ in range(2):
            try:
                await self.js.publish(audit_subject(entry.action), data, timeout=5)
                return True
            except Exception as exc:  # no stream yet: create it once with the defaults
                if self._ready:
                    log.warning("audit entry not stored: %r", exc)
                    return False
                self._ready = True
                try:
                    await self.js.stream_info(AUDIT_STREAM)
                except NotFoundError:
                    try:
                        await self.js.add_stream(audit_stream_config(await self._replicas()))
                    except Exception as add_exc:
                        log.warning("audit stream not created: %r", add_exc)
                        return False
                except Exception as info_exc:  # NATS did not answer: the action stands
                    log.warning("audit entry not stored: %r (then %r)", exc, info_exc)
                    return False
        return False

    async def _replicas(self) -> int:
        """The jobs stream's replica count, which the daemon chose from `nats.replicas`:
        an R1 trail on a cluster would stop recording when its one node is lost."""
        try:
            info = await self.js.stream_info(JOBS_STREAM)
        except Exception:
            return 1
        return int(info.config.num_replicas or 1)

    async def list(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        target: str | None = None,
        since: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[AuditEntry]:
        """Newest first. `action` matches a prefix ("dlq" matches "dlq.requeue");
        `actor` and `target` match exactly; `since` is a unix time."""
        try:
            info = await self.js.stream_info(AUDIT_STREAM)
        except NotFoundError:
            return Page()
        first, last = info.state.first_seq, info.state.last_seq
        start = parse_cursor(cursor, "a")
        if start is not None:
            last = min(last, start)

        async def fetch(lo: int, hi: int) -> list[Any]:
            return await fetch_range(self.nc, AUDIT_STREAM, under(AUDIT_SUBJECT_PREFIX), lo, hi)

        def keep(msg: Any) -> AuditEntry | Stop | None:
            e = decode_entry(msg.data or b"", msg.seq or 0)
            if e is None:
                return None
            if since is not None and e.at < since:
                return STOP
            if action and not e.action.startswith(action):
                return None
            if actor and e.actor != actor:
                return None
            if target and e.target != target:
                return None
            return e

        return await walk_back(fetch, first, last, keep, limit, "a")
