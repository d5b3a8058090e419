# ruff: noqa: E501 - tables of exact error lines read best unwrapped
"""The delivery keys of naq.yaml: retries, backoff, recycling, dead letters."""

from __future__ import annotations

import textwrap

import pytest

from naqd.config import ConfigError, parse_config
from naqd.config.checks import size
from naqd.models import BackoffConfig, QueueConfig


def queue(text: str) -> QueueConfig:
    return parse_config(textwrap.dedent(text), "naq.yaml", env={}).queues["default"]


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "naq.yaml", env={})
    return [str(i) for i in info.value.issues]


def test_delivery_keys_parse() -> None:
    q = queue(
        """
        queues:
          default:
            retries: 4
            backoff: {strategy: linear, base: 2s, max: 1m, jitter: 0.5}
            retry_on: [OSError, myapp.errors.Busy]
            dont_retry_on: ConnectionRefusedError
            max_deliveries: 9
            max_jobs_per_process: 100
            max_jobs_jitter: 7
            max_memory_per_process: 1GiB
        """
    )
    assert q.backoff == BackoffConfig(strategy="linear", base=2.0, max=60.0, jitter=0.5)
    assert q.retry_on == ("OSError", "myapp.errors.Busy")
    assert q.dont_retry_on == ("ConnectionRefusedError",)
    assert (q.deliveries, q.max_jobs_per_process, q.max_jobs_jitter) == (9, 100, 7)
    assert q.max_memory_per_process == 2**30


def test_defaults_and_delay_list() -> None:
    q = queue("queues: {default: {retries: 2, backoff: [1s, 500ms]}}")
    assert q.backoff.delays == (1.0, 0.5) and q.deliveries == 12
    assert parse_config("", "naq.yaml", env={}).dead_letters.max_age == 30 * 86400.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("queues: {default: {backoff: {strategy: random}}}", "queues.default.backoff.strategy: expected one of exponential, linear, fixed"),
        ("queues: {default: {backoff: {jitter: 2}}}", "queues.default.backoff.jitter: expected a number from 0 to 1"),
        ("queues: {default: {backoff: []}}", "queues.default.backoff: expected at least one delay"),
        ("queues: {default: {backoff: [1s, soon]}}", "queues.default.backoff[1]: expected a duration"),
        ("queues: {default: {retry_on: [not-a-class]}}", "queues.default.retry_on[0]: expected an exception class name"),
        ("queues: {default: {retries: 5, max_deliveries: 5}}", "queues.default.max_deliveries: must be at least retries + 1 (6)"),
        ("queues: {default: {max_memory_per_process: lots}}", "queues.default.max_memory_per_process: expected a size"),
        ("dead_letters: {max_age: 0}", "dead_letters.max_age: expected a duration greater than 0"),
        ("dead_letters: {max_ag: 1d}", 'dead_letters.max_ag: unknown key (did you mean "max_age"?)'),
    ],
)  # fmt: skip
def test_delivery_key_errors(text: str, expected: str) -> None:
    [issue] = errors(text)
    assert expected in issue


@pytest.mark.parametrize(
    ("value", "size_bytes"),
    [(0, 0), (1024, 1024), ("512MB", 512_000_000), ("512MiB", 512 * 2**20), ("1.5G", int(1.5 * 2**30)), ("100kb", 100_000)],
)  # fmt: skip
def test_size(value: object, size_bytes: int) -> None:
    assert size(value) == size_bytes


@pytest.mark.parametrize("value", ["", "MB", "-1MB", "1TB", True, 1.5, "12 parsecs"])
def test_bad_size(value: object) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        size(value)
