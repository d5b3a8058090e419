"""The audit trail's record and stream definition, without I/O: what an operator did
(who, what, target, result, when), one JSON message per action on `naqd.audit.<action>`.
Shared by the client (which appends and lists) and `ensure_resources` (which applies the
configured retention)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from naqd.protocol.names import AUDIT_STREAM, AUDIT_SUBJECT_PREFIX, under

DEFAULT_MAX_AGE = 90 * 86400.0  # 90 days, the default `audit.max_age`
DEFAULT_MAX_MSGS = 1_000_000  # and a count bound, so a script in a loop cannot fill a disk


@dataclass(frozen=True)
class AuditEntry:
    """One action. `result` is "ok", "dry_run", "not_found", "conflict" or "error";
    `detail` carries what the action returned (counts, job ids) or the error text."""

    actor: str  # who: a console user or token name, or "cli:<user>@<host>"
    action: str  # what: "dlq.requeue", "queue.pause", "job.cancel", ...
    target: str  # the job id, queue, schedule or filter acted on
    result: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    via: str = ""  # "console", "api", "cli"
    seq: int = 0  # the entry's sequence in the audit stream (set when read back)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_entry(entry: AuditEntry) -> bytes:
    d = entry.to_dict()
    d.pop("seq")
    return json.dumps(d, separators=(",", ":"), default=str).encode()


def decode_entry(data: bytes, seq: int = 0) -> AuditEntry | None:
    """None for a message that is not an audit entry (never raises)."""
    try:
        d = json.loads(data)
        return AuditEntry(
            actor=str(d["actor"]),
            action=str(d["action"]),
            target=str(d.get("target", "")),
            result=str(d.get("result", "")),
            detail=dict(d.get("detail") or {}),
            at=float(d.get("at", 0.0)),
            via=str(d.get("via", "")),
            seq=seq,
        )
    except (ValueError, KeyError, TypeError):
        return None


def audit_stream_config(
    replicas: int = 1, max_age: float = DEFAULT_MAX_AGE, max_msgs: int = DEFAULT_MAX_MSGS
) -> StreamConfig:
    """Limits retention: entries age out after `max_age` or past `max_msgs`, oldest first.
    Direct gets, so a page of the newest entries is a few reads by sequence."""
    return StreamConfig(
        name=AUDIT_STREAM,
        subjects=[under(AUDIT_SUBJECT_PREFIX)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age,
        max_msgs=max_msgs,
        num_replicas=replicas,
        allow_direct=True,
    )
