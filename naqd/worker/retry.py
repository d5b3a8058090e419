"""Retry delays: pure, a function of the attempt number only."""

from __future__ import annotations


def retry_delay(attempt: int, base: float = 1.0, maximum: float = 300.0) -> float:
    """Exponential backoff: 1 s, 2 s, 4 s ... after attempt 1, 2, 3 ..., capped at `maximum`."""
    if attempt < 1:
        attempt = 1
    return min(maximum, base * (2 ** (attempt - 1)))
