"""Which NaqdError a nats-py failure becomes inside a client call (naqd/client/faults.py)."""

from __future__ import annotations

import nats.errors
import pytest
from nats.js.errors import (
    APIError,
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from naqd import (
    ConnectError,
    EnqueueError,
    JobFailed,
    NaqdError,
    NotInitialized,
    ResultTimeout,
    Unavailable,
)
from naqd.client.faults import translate
from naqd.transport.throttle import ErrorThrottle


@pytest.mark.parametrize(
    ("raised", "becomes"),
    [
        (nats.errors.ConnectionClosedError(), ConnectError),
        (nats.errors.ConnectionReconnectingError(), ConnectError),
        (nats.errors.NoServersError(), ConnectError),
        (nats.errors.OutboundBufferLimitError(), ConnectError),
        (nats.errors.UnexpectedEOF(), ConnectError),
        (ConnectionResetError(104, "reset"), ConnectError),
        (nats.errors.TimeoutError(), Unavailable),
        (TimeoutError(), Unavailable),
        (nats.errors.NoRespondersError(), Unavailable),
        (NoStreamResponseError(), Unavailable),
        (ServiceUnavailableError(code=503, description="no leader"), Unavailable),
        (APIError(code=500, err_code=10057, description="no message found"), Unavailable),
        (BucketNotFoundError(), NotInitialized),
        (NotFoundError(code=404, err_code=10059, description="stream not found"), NotInitialized),
        (NotFoundError(code=404, err_code=10014, description="consumer not found"), NaqdError),
        (KeyNotFoundError(), NaqdError),
        (BadRequestError(code=400, err_code=10071, description="wrong last sequence"), NaqdError),
        (nats.errors.MaxPayloadError(), NaqdError),
    ],
)
def test_a_nats_failure_becomes_a_naqd_error(raised: Exception, becomes: type) -> None:
    error = translate(raised)
    assert type(error) is becomes
    assert type(raised).__name__ in str(error)


@pytest.mark.parametrize(
    "raised",
    [
        ValueError("bad job id"),
        TypeError("wrong arguments"),
        EnqueueError("not stored"),
        JobFailed("j", "ValueError", "boom"),
        ResultTimeout("j", 1.0),  # ours already, though a TimeoutError too
        KeyboardInterrupt(),
    ],
)
def test_what_is_not_a_nats_failure_goes_up_unchanged(raised: BaseException) -> None:
    assert translate(raised) is None


@pytest.mark.parametrize(
    "raised",
    [nats.errors.TimeoutError(), nats.errors.ConnectionClosedError(), NoStreamResponseError()],
)
def test_inside_an_enqueue_a_lost_or_silent_nats_means_not_stored(raised: Exception) -> None:
    error = translate(raised, enqueue=True)
    assert type(error) is EnqueueError and "not stored" in str(error)


def test_inside_an_enqueue_a_missing_bucket_is_still_not_initialized() -> None:
    assert type(translate(BucketNotFoundError(), enqueue=True)) is NotInitialized


def test_a_result_timeout_is_still_a_timeout_error() -> None:
    assert issubclass(ResultTimeout, TimeoutError) and issubclass(ResultTimeout, NaqdError)


def test_the_throttle_says_how_many_lines_it_left_out() -> None:
    now = [0.0]
    throttle = ErrorThrottle(every=30.0, clock=lambda: now[0])
    assert throttle.line("refused") == "refused"
    now[0] = 1.0
    assert throttle.line("refused") is None
    assert throttle.line("another") == "another"
    now[0] = 31.0
    assert throttle.line("refused") == "refused (and 1 more like it in the last 30s)"


def test_every_client_error_is_exported_from_naqd() -> None:
    import importlib
    import inspect
    import pkgutil

    import naqd
    import naqd.client

    found = {
        name
        for info in pkgutil.iter_modules(naqd.client.__path__)
        for name, cls in inspect.getmembers(
            importlib.import_module(f"naqd.client.{info.name}"), inspect.isclass
        )
        if issubclass(cls, NaqdError) and cls.__module__.startswith("naqd.")
    }
    assert found - set(naqd.__all__) == set()
    assert {"ServerTooOld", "Unavailable", "ResultTimeout", "NotInitialized"} <= found
