"""NATS authentication and TLS: connect options from the `nats:` config section, and a
connect that fails fast when the server rejects who we are (a wrong password is a
config error, an unreachable server is a wait). No loguru, no daemon code: the client
uses this too. Secrets are read here and never put into a message."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nats.aio.client import Client as NATS
from nats.errors import AuthorizationError
from nats.errors import Error as NatsError

from naqd.errors import NatsAuthError
from naqd.models import NatsConfig

# Server errors (-ERR) that mean "these credentials will never work here".
_AUTH_MARKERS = (
    "authorization violation",
    "authentication expired",
    "authentication revoked",
    "account authentication expired",
    "user authentication",
)


def read_secret(path: str, what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise NatsAuthError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not value:
        raise NatsAuthError(f"{what} {path} is empty")
    return value


def tls_enforced(nats: NatsConfig) -> bool:
    """Refuse a server that does not use TLS: asked for, or implied by a tls:// URL."""
    schemes = {urlsplit(u if "://" in u else f"nats://{u}").scheme for u in nats.urls}
    return nats.tls_required or bool(schemes & {"tls", "wss"})


def wants_tls(nats: NatsConfig) -> bool:
    tls = nats.tls
    schemes = {urlsplit(u if "://" in u else f"nats://{u}").scheme for u in nats.urls}
    return nats.tls_required or bool(tls.ca_file or tls.cert_file) or bool(schemes & {"tls", "wss"})


def tls_context(nats: NatsConfig) -> ssl.SSLContext:
    tls = nats.tls
    try:
        ctx = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
        if tls.cert_file and tls.key_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise NatsAuthError(f"cannot load the nats.tls files: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def connect_options(nats: NatsConfig) -> dict[str, Any]:
    """Keyword arguments for nats-py's connect: credentials, TLS, inbox prefix."""
    opts: dict[str, Any] = {}
    if nats.user:
        opts["user"] = nats.user
        opts["password"] = nats.password or read_secret(nats.password_file or "", "password_file")
    token = nats.token or (nats.token_file and read_secret(nats.token_file, "token_file"))
    if token:
        opts["token"] = token
    for key, option, what in (
        ("creds_file", "user_credentials", "credentials file"),
        ("nkey_seed_file", "nkeys_seed", "NKey seed file"),
    ):
        path = getattr(nats, key)
        if path:
            if not Path(path).is_file():
                raise NatsAuthError(f"nats.{key}: {what} {path} not found")
            opts[option] = path
    if wants_tls(nats):
        opts["tls"] = tls_context(nats)
    if nats.inbox_prefix:
        opts["inbox_prefix"] = nats.inbox_prefix
    return opts


def auth_method(opts: dict[str, Any]) -> str:
    """How we tried to authenticate, for an error message (no secret in it)."""
    if "user" in opts:
        return f"user {opts['user']!r} with a password"
    if "token" in opts:
        return "a token"
    if "user_credentials" in opts:
        return f"credentials file {opts['user_credentials']}"
    if "nkeys_seed" in opts:
        return f"NKey seed file {opts['nkeys_seed']}"
    return "no credentials"


def fatal_reason(exc: BaseException) -> str | None:
    """Why `exc` means our identity or TLS settings are wrong, or None if it may pass."""
    if isinstance(exc, AuthorizationError):
        return "authorization violation"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({getattr(exc, 'verify_message', exc)})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({getattr(exc, 'reason', None) or exc})"
    if isinstance(exc, NatsError):
        text = str(exc).lower()
        for marker in _AUTH_MARKERS:
            if marker in text:
                return marker
    return None


def is_tls(nc: NATS) -> bool:
    writer = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    return writer is not None and writer.get_extra_info("ssl_object") is not None


def safe_url(url: str) -> str:
    """A server URL without user:password@."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


async def connect(
    servers: list[str],
    options: dict[str, Any],
    *,
    tls_required: bool = False,
    error_cb: Callable[[Exception], Awaitable[None]] | None = None,
) -> NATS:
    """nats-py connect, except that a rejected identity or a failed TLS handshake raises
    NatsAuthError at once instead of being retried forever."""
    nc = NATS()
    connecting = True

    async def on_error(exc: Exception) -> None:
        reason = fatal_reason(exc)
        if connecting and reason is not None:
            where = ", ".join(safe_url(s) for s in servers)
            raise NatsAuthError(
                f"NATS at {where} refused the connection: {reason}; we sent "
                f"{auth_method(options)} (check the nats: section of the config)"
            )
        if error_cb is not None:
            await error_cb(exc)

    try:
        await nc.connect(servers=servers, **options, error_cb=on_error)
    except NatsAuthError:
        await _close_quietly(nc)
        raise
    connecting = False
    if tls_required and not is_tls(nc):
        await _close_quietly(nc)
        raise NatsAuthError(
            "nats.tls_required is set but the server did not use TLS; refusing the connection"
        )
    return nc


async def _close_quietly(nc: NATS) -> None:
    # A transport that failed its TLS handshake can hang in close(): bound the wait.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 2.0)
