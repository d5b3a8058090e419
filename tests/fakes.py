"""A fake NATS connection for the tier between unit tests and real servers: it records
what the worker asks of NATS, in order, and answers stream writes with a PubAck at once.

Used where the question is "in which order, and what" rather than "does NATS do it":
the settle order (store → notify → ack/nak/term → unlock) and the runner's slots and
backlog (tests/unit/test_settle.py, tests/unit/test_runner_slots.py). Behaviour that
depends on the server is tested against a real one (tests/inproc, tests/integration).
`bench/overhead.py` runs the real Runner on it with recording off (only counting), to
measure naqd's own CPU per job.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError, NotFoundError

from naqd.protocol.names import (
    DLQ_SUBJECT_PREFIX,
    done_subject,
    job_subject,
    kv_subject,
    result_subject,
)

PUBACK = b'{"stream":"KV_naqd_results","seq":1}'
INBOX = "_INBOX.fake"


@dataclass(frozen=True)
class Call:
    """One thing asked of NATS: `op` is publish, js.publish, kv.get or kv.delete."""

    op: str
    subject: str
    data: bytes = b""
    headers: dict[str, str] | None = None


class _Sub:
    async def unsubscribe(self) -> None:
        return None


class FakeNats:
    """What the worker needs of a connection. `record=False` only counts publishes (the
    bench: no list growing per job). `fail`: a predicate on a subject; a publish to a
    matching subject raises `error` (a store that cannot reach NATS)."""

    def __init__(
        self,
        *,
        record: bool = True,
        fail: Callable[[str], bool] | None = None,
        error: type[Exception] = asyncio.TimeoutError,
    ) -> None:
        self.record = record
        self.calls: list[Call] = []
        self.published = 0
        self.fail = fail
        self.error = error
        self.on_puback: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.subs: dict[str, Any] = {}
        self.replies: dict[str, str] = {}  # ack subject -> job id (job_message)
        self.js = FakeJetStream(self)

    def jetstream(self) -> FakeJetStream:
        return self.js

    def new_inbox(self) -> str:
        return INBOX

    async def subscribe(self, subject: str, cb: Any = None, **_: Any) -> _Sub:
        if subject.startswith(INBOX + "."):
            self.on_puback = cb
            self._loop = asyncio.get_running_loop()
        else:
            self.subs[subject] = cb
        return _Sub()

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None
    ) -> None:
        self.published += 1
        if self.fail is not None and self.fail(subject):
            raise self.error(f"fake: publish to {subject} fails")
        if self.record:
            self.calls.append(Call("publish", subject, payload, headers))
        if reply.startswith(INBOX + ".") and self.on_puback is not None:
            ack = Msg(_client=self, subject=reply, reply="", data=PUBACK, headers=None)  # type: ignore[arg-type]
            self._loop.create_task(self.on_puback(ack))

    async def flush(self, timeout: float = 0) -> None:
        return None

    # -- reading what was asked --------------------------------------------------------

    def steps(self, job_id: str) -> list[str]:
        """The calls about one job as settle steps: store, bury, notify, ack, nak, term,
        wpi, unlock (and running, progress, for the records written while it runs)."""
        out = []
        for call in self.calls:
            step = _step(call, job_id)
            if step in _ACKS.values() and self.replies.get(call.subject, job_id) != job_id:
                continue  # another job's ack
            if step:
                out.append(step)
        return out


class FakeJetStream:
    """js.publish (recorded, answered at once), a KV that holds what the test puts in it,
    and get_msg for the stored records (none: NotFoundError)."""

    def __init__(self, nc: FakeNats) -> None:
        self.nc = nc
        self.kv_data: dict[str, dict[str, bytes]] = {}
        self.records: dict[str, bytes] = {}  # subject -> last record published

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,
        stream: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        self.nc.published += 1
        if self.nc.fail is not None and self.nc.fail(subject):
            raise self.nc.error(f"fake: js.publish to {subject} fails")
        self.nc.calls.append(Call("js.publish", subject, payload, headers))
        self.records[subject] = payload
        return json.loads(PUBACK)

    async def get_msg(self, stream: str, **kw: Any) -> Any:
        raise NotFoundError()

    async def key_value(self, bucket: str) -> FakeKV:
        return FakeKV(self, bucket)


@dataclass
class _Entry:
    value: bytes
    revision: int = 1


@dataclass
class FakeKV:
    js: FakeJetStream
    bucket: str
    _keys: dict[str, bytes] = field(init=False)

    def __post_init__(self) -> None:
        self._keys = self.js.kv_data.setdefault(self.bucket, {})

    async def get(self, key: str) -> _Entry:
        self.js.nc.calls.append(Call("kv.get", kv_subject(self.bucket, key)))
        if key not in self._keys:
            raise KeyNotFoundError()
        return _Entry(self._keys[key])

    async def delete(self, key: str, last: int | None = None) -> bool:
        self.js.nc.calls.append(Call("kv.delete", kv_subject(self.bucket, key)))
        self._keys.pop(key, None)
        return True


def job_message(
    nc: FakeNats,
    data: bytes,
    headers: dict[str, str] | None = None,
    *,
    queue: str = "q",
    seq: int = 1,
    delivered: int = 1,
) -> Msg:
    """A job message as a pull consumer delivers it, whose acks go to `nc` (and count in
    `nc.steps()` for its Nats-Msg-Id, or "seq-<seq>" without one)."""
    reply = f"$JS.ACK.NAQD_JOBS.q-{queue}.{delivered}.{seq}.{seq}.1700000000000000000.0"
    nc.replies[reply] = (headers or {}).get("Nats-Msg-Id") or f"seq-{seq}"
    return Msg(_client=nc, subject=job_subject(queue), reply=reply, data=data, headers=headers)  # type: ignore[arg-type]


_ACKS = {b"": "ack", b"+ACK": "ack", b"-NAK": "nak", b"+TERM": "term", b"+WPI": "wpi"}


def _step(call: Call, job_id: str) -> str:
    if call.op == "kv.delete":
        return "unlock"
    if call.op == "kv.get":
        return ""
    subject = call.subject
    if subject == result_subject(job_id):
        status = json.loads(call.data).get("status") if call.data.startswith(b"{") else None
        return "running" if status == "running" else "store"
    if subject.startswith(DLQ_SUBJECT_PREFIX + "."):
        return "bury"
    if subject == done_subject(job_id):
        return "notify"
    if subject.startswith("$JS.ACK."):
        return _ACKS.get(call.data.split(b" ")[0], "nak")
    return ""
