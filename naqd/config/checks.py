"""Scalar value checks for the schema: `check(value) -> value`, raising ValueError with a
message fit for the operator (YAML words, never Python type names). Pure functions, so
they are easy to test and reuse (e.g. from a CLI `--set` flag)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from naqd.protocol.signing import MIN_KEY_LENGTH
from naqd.values import describe, format_duration, parse_duration


def integer(low: int, high: int | None, expected: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected {expected}, got {describe(value)}")
        if value < low or (high is not None and value > high):
            raise ValueError(f"expected {expected}, got {describe(value)}")
        return value

    return check


def duration(at_least: float | None = None) -> Callable[[Any], float]:
    """A duration; `at_least=None` means "greater than zero"."""

    def check(value: Any) -> float:
        seconds = parse_duration(value)
        if at_least is None and seconds <= 0:
            raise ValueError(f"expected a duration greater than 0, got {describe(value)}")
        if at_least is not None and seconds < at_least:
            limit = format_duration(at_least)
            raise ValueError(f"expected a duration of at least {limit}, got {describe(value)}")
        return seconds

    return check


def choice(*options: str, upper: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        candidate = value.upper() if upper and isinstance(value, str) else value
        if candidate not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {describe(value)}")
        return candidate

    return check


def sync_setting(value: Any) -> str | float:
    """`always`, or the interval of the embedded server's fsync timer."""
    if value == "always":
        return "always"
    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = 0.0
    if seconds < 0.01 or isinstance(value, bool):
        raise ValueError(f"expected always or a duration like 1s, got {describe(value)}")
    return seconds


def http_url(value: Any) -> str:
    """A monitoring endpoint, http(s)://host:port."""
    expected = f"expected a monitoring URL like http://10.0.0.1:8222, got {describe(value)}"
    if not isinstance(value, str) or any(c.isspace() for c in value):
        raise ValueError(expected)
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(expected)
    return value.rstrip("/")


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {describe(value)}")
    return value


def auto_or_boolean(value: Any) -> bool | None:
    """true, false, or `auto` (None: decided from the environment)."""
    if value == "auto":
        return None
    if not isinstance(value, bool):
        raise ValueError(f"expected auto, true or false, got {describe(value)}")
    return value


def otlp_url(value: Any) -> str:
    """An http(s) URL, as an OTLP/HTTP endpoint is."""
    expected = f"expected a URL like http://127.0.0.1:4318, got {describe(value)}"
    if not isinstance(value, str) or any(c.isspace() for c in value):
        raise ValueError(expected)
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(expected)
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {describe(value)}")
    return value


def host_port(value: Any) -> str:
    """`host:port` (IPv6 as `[::1]:4222`), as nats-server and the metrics server take."""
    expected = f"expected host:port like 127.0.0.1:4222, got {describe(value)}"
    if not isinstance(value, str):
        raise ValueError(expected)
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or any(c.isspace() for c in host) or not port.isdigit():
        raise ValueError(expected)
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"expected a port from 1 to 65535, got {describe(value)}")
    return value


def server_url(value: Any) -> str:
    """A NATS server URL; the scheme may be omitted (nats-py assumes nats://)."""
    expected = f"expected a server URL like nats://10.0.0.1:4222, got {describe(value)}"
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise ValueError(expected)
    try:
        parts = urlsplit(value if "://" in value else f"nats://{value}")
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.hostname or not port_ok:
        raise ValueError(expected)
    return value


def _dotted(value: str) -> bool:
    return all(part.isidentifier() for part in value.split("."))


def module_name(value: Any) -> str:
    if not isinstance(value, str) or not _dotted(value):
        raise ValueError(
            f"expected a dotted module name like examples.tasks, got {describe(value)}"
        )
    return value


def _ref(value: Any, expected: str) -> str:
    """`package.module:qualname`, else `expected` in the error."""
    if isinstance(value, str):
        module, sep, qualname = value.partition(":")
        if sep and _dotted(module) and _dotted(qualname):
            return value
    raise ValueError(f"expected {expected}, got {describe(value)}")


def object_ref(value: Any) -> str:
    """A middleware class or object."""
    return _ref(value, '"package.module:Name"')


def task_ref(value: Any) -> str:
    return _ref(value, 'a task like "package.module:function"')


SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"expected a number from 0 to 1, got {describe(value)}")
    return float(value)


def size(value: Any) -> int:
    """Bytes from an int or `512KiB`, `1MiB`, `2MB`, `800M` (K/M/G alone are binary, as in
    `ps`)."""
    expected = f"expected a size like 1MiB, 512KiB or 65536, got {describe(value)}"
    if isinstance(value, bool):
        raise ValueError(expected)
    if isinstance(value, int):
        number: float = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        digits = text.rstrip("KMGkmgiBb")
        unit = text[len(digits) :].lower()
        if unit not in SIZE_UNITS:
            raise ValueError(expected)
        try:
            number = float(digits) * SIZE_UNITS[unit]
        except ValueError:
            raise ValueError(expected) from None
    else:
        raise ValueError(expected)
    if number < 0:
        raise ValueError(expected)
    return int(number)


def payload_size(value: Any) -> int:
    """A maximum message size: at least 1KiB, or nothing could be enqueued."""
    number = size(value)
    if number < 1024:
        raise ValueError(f"expected a size of at least 1KiB, got {describe(value)}")
    return number


def secret_key(value: Any) -> str:
    """An HMAC key: long enough that guessing it is hopeless (never echoed in errors)."""
    if not isinstance(value, str) or len(value.strip()) < MIN_KEY_LENGTH:
        raise ValueError(
            f"expected a secret of at least {MIN_KEY_LENGTH} characters "
            '(generate one with: python -c "import secrets; print(secrets.token_hex(32))")'
        )
    return value.strip()


def secret(value: Any) -> str:
    """A password or token: any non-empty text, never echoed in errors."""
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty secret (text)")
    return value


def task_pattern(value: Any) -> str:
    """`module`, `module:function` or a glob of either (`myapp.*`, `myapp.tasks:send_*`)."""
    ok = isinstance(value, str) and value and not any(c.isspace() for c in value)
    if ok:
        module, _, qualname = value.partition(":")
        allowed = set("*?[]!-")
        ok = bool(module) and all(
            c.isalnum() or c in "._" or c in allowed for c in module + qualname
        )
    if not ok:
        raise ValueError(
            f'expected a task name or pattern like "myapp.tasks", "myapp.tasks:send_*" '
            f'or "myapp.*", got {describe(value)}'
        )
    return str(value)


def subject_prefix(value: Any) -> str:
    """A NATS subject prefix like _INBOX_orders (no spaces or wildcards)."""
    if (
        not isinstance(value, str)
        or not value
        or any(c.isspace() or c in "*>" for c in value)
        or "" in value.split(".")
    ):
        raise ValueError(f"expected a subject prefix like _INBOX_orders, got {describe(value)}")
    return value


def exception_name(value: Any) -> str:
    """`ValueError` or a dotted `package.module.Error`; matched against the exception's
    class hierarchy, so `OSError` also covers `ConnectionError`."""
    if not isinstance(value, str) or not _dotted(value):
        raise ValueError(
            f"expected an exception class name like TimeoutError, got {describe(value)}"
        )
    return value


_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def rate(value: Any) -> float:
    """`100/s`, `1000/m` or `3600/h` -> jobs per second."""
    expected = f"expected a rate like 100/s, 1000/m or 3600/h, got {describe(value)}"
    if not isinstance(value, str):
        raise ValueError(expected)
    count, _, unit = value.strip().partition("/")
    unit = unit.strip()
    if unit not in _RATE_UNITS:
        raise ValueError(expected)
    try:
        number = float(count.strip())
    except ValueError:
        raise ValueError(expected) from None
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError(f"a rate must be greater than 0, got {describe(value)}")
    return number / _RATE_UNITS[unit]


def priority_level(value: Any) -> str:
    """A priority level name (a subject token): `high`, `default`, `5`."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
        raise ValueError(
            f"expected a priority level name of 1-32 letters, digits, _ or -, got {describe(value)}"
        )
    return value


def password_hash(value: Any) -> str:
    """A hash from `naqd dashboard hash-password` (scrypt$N$r$p$salt$hash); never a
    plain password, which the error says without echoing it."""
    parts = value.split("$") if isinstance(value, str) else []
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        raise ValueError(
            "expected a password hash from `naqd dashboard hash-password` "
            "(scrypt$...), not a plain password"
        )
    return str(value)


def role(value: Any) -> str:
    if value not in ("viewer", "operator"):
        raise ValueError(f'expected "viewer" or "operator", got {describe(value)}')
    return str(value)


def address_or_network(value: Any) -> str:
    """An IP address or network (10.0.0.0/8) a trusted proxy connects from."""
    import ipaddress

    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValueError(
            f"expected an IP address or network like 127.0.0.1 or 10.0.0.0/8, got {describe(value)}"
        ) from None
    return str(value)


def header_name(value: Any) -> str:
    ok = isinstance(value, str) and value and all(c.isalnum() or c == "-" for c in value)
    if not ok:
        raise ValueError(
            f"expected an HTTP header name like X-Forwarded-User, got {describe(value)}"
        )
    return str(value)


def is_loopback(listen: str) -> bool:
    """Whether a `host:port` listens on loopback only (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress

    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
