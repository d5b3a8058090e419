"""Who is asking, decided without I/O: password hashes (scrypt), signed session cookies,
CSRF tokens, bearer tokens, the trusted proxy header and the login rate limit. The web
layer (naqd/dashboard/web.py) only feeds requests in; these are table-tested."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from naqd.config.checks import is_loopback
from naqd.models import DashboardConfig

# scrypt at N=2**14, r=8: 16 MiB and ~50 ms a check, the cost OWASP suggests for scrypt.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
COOKIE = "naqd_session"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Principal:
    """The caller: `via` is "session", "token", "proxy" or "anonymous" (no users or
    tokens configured: read-only)."""

    name: str
    role: str
    via: str

    @property
    def may_act(self) -> bool:
        return self.role == "operator"

    @property
    def actor(self) -> str:
        """How the audit trail names it: `user:alice`, `token:ci`, `proxy:bob`."""
        kind = {"session": "user"}.get(self.via, self.via)
        return f"{kind}:{self.name}"


ANONYMOUS = Principal("anonymous", "viewer", "anonymous")


# -- passwords ---------------------------------------------------------------------------


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64), the form `dashboard.users.*.password_hash` takes."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, hashed: str | None) -> bool:
    if not hashed:
        return False
    try:
        kind, n, r, p, salt, digest = hashed.split("$")
        if kind != "scrypt":
            return False
        got = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- sessions and CSRF -------------------------------------------------------------------


def sign_session(key: bytes, user: str, now: float, csrf: str | None = None) -> str:
    """A cookie value: the user ("" before a login: the cookie then only carries the CSRF
    token), when it was issued and its CSRF token, HMAC-signed (not encrypted: it holds
    nothing secret beyond the CSRF token, which the page has anyway)."""
    body = {"u": user, "t": int(now), "c": csrf or secrets.token_urlsafe(18)}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_sig(key, payload)}"


@dataclass(frozen=True)
class Session:
    user: str
    issued: float
    csrf: str


def read_session(key: bytes, value: str | None, now: float, ttl: float) -> Session | None:
    """The session in a cookie, or None when it is missing, forged or older than `ttl`."""
    if not value or "." not in value:
        return None
    payload, _, sig = value.rpartition(".")
    if not hmac.compare_digest(sig, _sig(key, payload)):
        return None
    try:
        body = json.loads(_unb64(payload))
        session = Session(str(body["u"]), float(body["t"]), str(body["c"]))
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 <= now - session.issued <= ttl:
        return None
    return session


def _sig(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    return session is not None and bool(sent) and hmac.compare_digest(session.csrf, sent or "")


# -- who is asking ----------------------------------------------------------------------


def session_principal(dash: DashboardConfig, session: Session | None) -> Principal | None:
    """A session names a user; one removed from the config since logs in no more."""
    user = dash.users.get(session.user) if session is not None and session.user else None
    if user is None or not user.password_hash:
        return None
    return Principal(user.name, user.role, "session")


def token_principal(dash: DashboardConfig, authorization: str | None) -> Principal | None:
    """`Authorization: Bearer <token>`: compared in constant time against every token."""
    if not authorization:
        return None
    scheme, _, sent = authorization.partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        return None
    found = None
    for tok in dash.tokens.values():
        if hmac.compare_digest(tok.token.encode(), sent.strip().encode()):
            found = Principal(tok.name, tok.role, "token")
    return found


def proxy_principal(
    dash: DashboardConfig, client_ip: str | None, headers: Mapping[str, str]
) -> Principal | None:
    """The proxy's user header, believed only from a configured proxy address."""
    proxy = dash.proxy
    if proxy is None or not client_ip:
        return None
    name = headers.get(proxy.header.lower(), "").strip()
    if not name or not trusted(client_ip, proxy.trusted):
        return None
    user = dash.users.get(name)
    return Principal(name, user.role if user else proxy.role, "proxy")


def trusted(client_ip: str, networks: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(n, strict=False) for n in networks)


def login(dash: DashboardConfig, user: str, password: str) -> Principal | None:
    entry = dash.users.get(user)
    # A missing user still costs one scrypt, so timing does not tell who exists.
    ok = verify_password(password, entry.password_hash if entry else _DUMMY)
    return Principal(entry.name, entry.role, "session") if ok and entry else None


_DUMMY = hash_password("-", salt=b"naqd-dummy-salt!")


# -- failed logins ----------------------------------------------------------------------


class LoginLimiter:
    """At most `attempts` failed logins per address in `window` seconds; bounded memory
    (the least recently failing addresses are forgotten first)."""

    def __init__(self, attempts: int, window: float = 60.0, remember: int = 10_000) -> None:
        self.attempts = attempts
        self.window = window
        self.remember = remember
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def retry_after(self, who: str, now: float) -> float:
        """0 when `who` may try now, else seconds to wait."""
        recent = [t for t in self._failures.get(who, []) if now - t < self.window]
        if len(recent) < self.attempts:
            return 0.0
        return max(0.0, recent[0] + self.window - now)

    def failed(self, who: str, now: float) -> None:
        recent = [t for t in self._failures.pop(who, []) if now - t < self.window]
        self._failures[who] = [*recent, now][-self.attempts :]
        while len(self._failures) > self.remember:
            self._failures.popitem(last=False)

    def succeeded(self, who: str) -> None:
        self._failures.pop(who, None)


# -- where it may listen ----------------------------------------------------------------


def listen_refusal(dash: DashboardConfig, listen: str) -> str | None:
    """Why the console must not listen on `listen`, or None. Without users, tokens or a
    proxy it is an open read-only page: loopback only."""
    if dash.authenticated or is_loopback(listen):
        return None
    return (
        f"the dashboard has no users, tokens or proxy configured and will not listen on "
        f"{listen}: add dashboard.users (naqd dashboard hash-password) or dashboard.tokens "
        "to naq.yaml, or listen on 127.0.0.1"
    )
