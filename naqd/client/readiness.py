"""Why a job publish got "no responders": a NATS without JetStream, or a JetStream where
no naqd process has created the streams yet. Both are permanent until someone acts, so
the client says so at once instead of retrying for its whole publish deadline."""

from __future__ import annotations

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from naqd.client.errors import EnqueueError
from naqd.protocol.names import JOBS_STREAM

JETSTREAM_NOT_ENABLED = (10039, 10076)  # for the server, for this account


class NotInitialized(EnqueueError):
    """naqd's streams do not exist on this NATS (or it has no JetStream): start a naqd
    daemon once, or run `naqd init --config naq.yaml`."""


async def missing_streams(js: JetStreamContext) -> NotInitialized | None:
    """The error to raise when the job stream is not there for good; None when it exists
    or the answer is unclear (a cluster electing a leader: keep retrying)."""
    try:
        await js.stream_info(JOBS_STREAM)
    except NotFoundError:
        return NotInitialized(
            f"naqd's streams do not exist yet (no stream {JOBS_STREAM}): start a naqd "
            "daemon once, or run `naqd init --config naq.yaml`"
        )
    except (NoRespondersError, ServiceUnavailableError):
        return NotInitialized(
            "JetStream is not enabled on this NATS server (its JetStream API does not "
            "answer): naqd needs nats-server with -js (or a `jetstream {}` block)"
        )
    except APIError as exc:
        if exc.err_code in JETSTREAM_NOT_ENABLED:
            return NotInitialized(
                f"JetStream is not enabled for this NATS account ({exc.description})"
            )
        return None
    except (NatsTimeoutError, TimeoutError):
        return None
    return None
