"""The registry of known queues (docs/client.md#known-queues), shared by the daemon, which
adds its configured queues at boot, and the client, which watches it to refuse an
enqueue to a queue nobody declared (a typo would otherwise sit in the stream forever),
and adds a queue the application declares for workers that come later. No loguru: the
client imports this."""

from __future__ import annotations

import difflib
import json
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from nats.js.errors import APIError, NotFoundError

from naqd.protocol.names import (
    HDR_EXPECTED_LAST_SUBJECT_SEQ,
    HDR_KV_OPERATION,
    QUEUES_BUCKET,
    kv_stream,
    kv_subject,
)

if TYPE_CHECKING:
    from nats.js import JetStreamContext


def queue_record(by: str) -> bytes:
    """A registry value: who declared the queue ("config" or "client"), where and when."""
    return json.dumps({"by": by, "host": socket.gethostname(), "at": time.time()}).encode()


# A compare-and-set that lost: "wrong last sequence" (10071) or, from a clustered stream,
# its constant form (10164). nats-py maps both for kv.create/update, not for a publish.
WRONG_LAST_SEQUENCE = frozenset({10071, 10164})


def lost_compare_and_set(exc: APIError) -> bool:
    return exc.err_code in WRONG_LAST_SEQUENCE


async def register_queues(js: JetStreamContext, names: Iterable[str], by: str) -> None:
    """Add `names` to the registry. A name already there is left as it is (a
    compare-and-set on "no value yet"): every worker process runs this at boot, and a
    rewrite would wake every client's watch for nothing. A name that was forgotten
    (`naqd queues forget`) has a delete marker as its last message, which the
    compare-and-set must name to write over it."""
    for name in names:
        subject = kv_subject(QUEUES_BUCKET, name)
        last = 0
        for _ in range(5):  # another registration racing ours wins after one round
            try:
                await js.publish(
                    subject, queue_record(by), headers={HDR_EXPECTED_LAST_SUBJECT_SEQ: str(last)}
                )
                break
            except APIError as exc:
                if not lost_compare_and_set(exc):
                    raise
            last = await _forgotten_at(js, subject)
            if not last:  # a live value: the name is there already
                break


async def _forgotten_at(js: JetStreamContext, subject: str) -> int:
    """The sequence of the subject's last message when it is a delete marker, else 0."""
    try:
        msg = await js.get_msg(kv_stream(QUEUES_BUCKET), subject=subject, direct=True)
    except NotFoundError:  # gone meanwhile (purged): "no value yet" applies again
        return 0
    if (msg.headers or {}).get(HDR_KV_OPERATION) in ("DEL", "PURGE"):
        return int(msg.seq or 0)
    return 0


def unknown_queue_message(queue: str, known: Iterable[str]) -> str:
    """Why an enqueue to `queue` is refused, with the closest known names."""
    names = sorted(known)
    close = difflib.get_close_matches(queue, names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(n) for n in close)}?" if close else ""
    listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
    return (
        f"queue {queue!r} is not served by any naqd daemon nor declared in any config"
        f"{hint} (known queues: {listed}). For a queue whose workers start later, "
        f"declare it first: `await client.declare_queue({queue!r})`"
    )
