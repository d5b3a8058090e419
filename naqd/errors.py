"""The base error and the one error the transport raises. Here, below the client and
the transport, so both can use them without importing each other."""

from __future__ import annotations


class NaqdError(Exception):
    """Base class for naqd errors."""


class NatsAuthError(NaqdError):
    """NATS refused our credentials or TLS settings: retrying with the same ones cannot
    help, so connecting fails at once instead of retrying forever."""
