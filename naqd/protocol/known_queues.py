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

from nats.js.errors import APIError

from naqd.protocol.names import HDR_EXPECTED_LAST_SUBJECT_SEQ, QUEUES_BUCKET, kv_subject

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
    rewrite would wake every client's watch for nothing."""
    for name in names:
        try:
            await js.publish(
                kv_subject(QUEUES_BUCKET, name),
                queue_record(by),
                headers={HDR_EXPECTED_LAST_SUBJECT_SEQ: "0"},
            )
        except APIError as exc:
            if not lost_compare_and_set(exc):  # the name is there already
                raise


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
