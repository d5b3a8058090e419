from __future__ import annotations

import pytest

from naqd.models import BackoffConfig, QueueConfig
from naqd.protocol.options import check_backoff, exception_names
from naqd.worker.recycle import RecycleLimits
from naqd.worker.retry import JobOptions, backoff_delay, backoff_from_wire, matches, policy_for

EXP = BackoffConfig(strategy="exponential", base=1.0, max=300.0, jitter=0.0)


@pytest.mark.parametrize(
    ("backoff", "attempt", "delay"),
    [
        (EXP, 0, 1.0),
        (EXP, 1, 1.0),
        (EXP, 2, 2.0),
        (EXP, 3, 4.0),
        (EXP, 9, 256.0),
        (EXP, 10, 300.0),
        (EXP, 5000, 300.0),
        (BackoffConfig(strategy="linear", base=5.0, max=12.0, jitter=0), 1, 5.0),
        (BackoffConfig(strategy="linear", base=5.0, max=12.0, jitter=0), 2, 10.0),
        (BackoffConfig(strategy="linear", base=5.0, max=12.0, jitter=0), 3, 12.0),
        (BackoffConfig(strategy="fixed", base=7.0, jitter=0), 4, 7.0),
        (BackoffConfig(delays=(1.0, 10.0, 60.0)), 1, 1.0),
        (BackoffConfig(delays=(1.0, 10.0, 60.0)), 3, 60.0),
        (BackoffConfig(delays=(1.0, 10.0, 60.0)), 8, 60.0),
    ],
)
def test_backoff_delay(backoff: BackoffConfig, attempt: int, delay: float) -> None:
    assert backoff_delay(attempt, backoff, rand=0.0) == delay


def test_jitter_only_shortens_within_its_fraction() -> None:
    b = BackoffConfig(strategy="fixed", base=10.0, jitter=0.2)
    assert backoff_delay(1, b, 0.0) == 10.0
    assert backoff_delay(1, b, 0.5) == pytest.approx(9.0)
    assert backoff_delay(1, b, 0.999) > 8.0


class AppError(Exception):
    pass


class Transient(AppError):
    pass


@pytest.mark.parametrize(
    ("names", "exc", "expected"),
    [
        (["ValueError"], ValueError(), True),
        (["OSError"], ConnectionResetError(), True),
        (["ValueError"], KeyError(), False),
        ([f"{__name__}.AppError"], Transient(), True),
        (["Transient"], AppError(), False),
        ([], ValueError(), False),
    ],
)
def test_matches_walks_the_class_hierarchy(names: list[str], exc: Exception, expected: bool):
    assert matches(type(exc), names) is expected


def test_policy_retry_on_and_dont_retry_on() -> None:
    q = QueueConfig(
        "q", retries=2, retry_on=("OSError",), dont_retry_on=("ConnectionRefusedError",)
    )
    p = policy_for(q)
    assert p.max_attempts == 3
    assert p.retryable(TimeoutError()) and p.retryable(ConnectionResetError())
    assert not p.retryable(ConnectionRefusedError()) and not p.retryable(ValueError())
    every = policy_for(QueueConfig("q"))
    assert every.retryable(ValueError()) and every.retryable(KeyError())


def test_job_options_override_the_queue() -> None:
    q = QueueConfig("q", retries=2, retry_on=("OSError",))
    job = JobOptions(retries=5, backoff=backoff_from_wire([3, 4]), dont_retry_on=("KeyError",))
    p = policy_for(q, job)
    assert p.retries == 5 and p.backoff.delays == (3.0, 4.0)
    assert p.retry_on == ("OSError",) and p.dont_retry_on == ("KeyError",)


def test_backoff_wire_round_trip() -> None:
    raw = check_backoff({"strategy": "linear", "base": 2, "jitter": 0})
    assert backoff_from_wire(raw) == BackoffConfig(strategy="linear", base=2.0, jitter=0.0)
    assert backoff_from_wire(check_backoff((1, 2.5))).delays == (1.0, 2.5)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "at least one"),
        ([1, -2], "seconds"),
        ({"strategy": "random"}, "strategy"),
        ({"jitter": 2}, "0 to 1"),
        ({"base": "5s"}, "seconds"),
        ({"bse": 1}, "unknown key"),
        ("5s", "mapping or a list"),
    ],
)
def test_bad_per_job_backoff(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_backoff(raw)


def test_exception_names_from_classes_and_strings() -> None:
    assert exception_names([ValueError, "pkg.Err", AppError]) == (
        "ValueError",
        "pkg.Err",
        f"{__name__}.AppError",
    )
    assert exception_names(KeyError) == ("KeyError",)
    with pytest.raises(ValueError):
        exception_names(["not a name"])


@pytest.mark.parametrize(
    ("max_jobs", "jitter", "rand", "limit"),
    [(0, None, 0.5, 0), (100, None, 0.0, 100), (100, None, 0.999, 110), (100, 0, 0.9, 100),
     (10, 5, 0.5, 13)],
)  # fmt: skip
def test_recycle_job_limit_with_jitter(max_jobs: int, jitter: int | None, rand: float, limit: int):
    q = QueueConfig("q", max_jobs_per_process=max_jobs, max_jobs_jitter=jitter)
    assert RecycleLimits.for_queue(q, rand).max_jobs == limit


def test_recycle_reasons() -> None:
    limits = RecycleLimits(max_jobs=3, max_rss=1000)
    assert limits.exceeded(2, lambda: 999) == ""
    assert "max_jobs_per_process" in limits.exceeded(3, lambda: 0)
    assert "max_memory_per_process" in limits.exceeded(1, lambda: 1000)
    read = []
    RecycleLimits(max_jobs=3).exceeded(1, lambda: read.append(1) or 0)
    assert not read  # RSS is not read without a memory limit
