"""Dead-letter entries: the original message (bytes and headers, so a requeue is exact)
plus why and how it died. JSON, no I/O."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from naqd.protocol.envelope import ErrorInfo, error_dict, error_info

# failed: the task raised and retries are used up (or the error is not retryable);
# unreadable: the payload is not a job naqd can decode (bytes, version, fields);
# unknown_task: the task name does not resolve; bad_arguments: args do not fit the
# signature; worker_lost: delivered again and again without an outcome (workers died).
Reason = Literal["failed", "unreadable", "unknown_task", "bad_arguments", "worker_lost"]


@dataclass(frozen=True)
class DeadLetter:
    id: str
    queue: str
    reason: Reason
    error: ErrorInfo
    subject: str
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)
    errors: tuple[ErrorInfo, ...] = ()
    attempts: int = 0
    task: str = ""
    stream_seq: int = 0
    dead_at: float = field(default_factory=time.time)
    worker: str = ""
    seq: int = 0  # the entry's own sequence in the DLQ stream (set when read back)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "task": self.task,
            "reason": self.reason,
            "attempts": self.attempts,
            "error": f"{self.error.type}: {self.error.message}",
            "dead_at": self.dead_at,
        }

    def to_dict(self) -> dict[str, Any]:
        d = {
            "v": 1,
            "id": self.id,
            "queue": self.queue,
            "reason": self.reason,
            "task": self.task,
            "attempts": self.attempts,
            "error": _err(self.error),
            "errors": [_err(e) for e in self.errors],
            "subject": self.subject,
            "headers": self.headers,
            "stream_seq": self.stream_seq,
            "dead_at": self.dead_at,
            "worker": self.worker,
        }
        try:
            text = self.payload.decode()
            json.loads(text)  # shown as text only when it is the JSON envelope
            d["payload"] = text
            d["payload_encoding"] = "text"
        except (UnicodeDecodeError, ValueError):
            d["payload"] = base64.b64encode(self.payload).decode()
            d["payload_encoding"] = "base64"
        return d


def _err(e: ErrorInfo) -> dict[str, Any]:
    return error_dict(e)


def encode_dead_letter(entry: DeadLetter) -> bytes:
    return json.dumps(entry.to_dict(), separators=(",", ":")).encode()


def decode_dead_letter(data: bytes, seq: int = 0) -> DeadLetter:
    d = json.loads(data)
    if d.get("payload_encoding") == "base64":
        payload = base64.b64decode(d.get("payload", ""))
    else:
        payload = str(d.get("payload", "")).encode()
    return DeadLetter(
        id=d["id"],
        queue=d["queue"],
        reason=d["reason"],
        error=error_info(d["error"]),
        subject=d.get("subject", ""),
        payload=payload,
        headers=dict(d.get("headers") or {}),
        errors=tuple(error_info(e) for e in d.get("errors") or ()),
        attempts=d.get("attempts", 0),
        task=d.get("task", ""),
        stream_seq=d.get("stream_seq", 0),
        dead_at=d.get("dead_at", 0.0),
        worker=d.get("worker", ""),
        seq=seq,
    )
