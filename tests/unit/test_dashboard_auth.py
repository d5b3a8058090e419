"""The console's pure decisions: password hashes, signed sessions, CSRF, bearer tokens,
the trusted proxy header, the login limit, where an open console may listen, the live
broker's bounds, and the `dashboard:` section of naq.yaml."""

from __future__ import annotations

import asyncio

import pytest

from naqd.config import ConfigError, parse_config
from naqd.dashboard import auth, live
from naqd.models import DashboardConfig, DashboardProxyConfig, DashboardToken, DashboardUser

HASH = auth.hash_password("s3cret", salt=b"0123456789abcdef")
DASH = DashboardConfig(
    users={
        "alice": DashboardUser("alice", HASH, "operator"),
        "victor": DashboardUser("victor", HASH, "viewer"),
        "sso-only": DashboardUser("sso-only", None, "operator"),
    },
    tokens={"ci": DashboardToken("ci", "t" * 40, "operator")},
    proxy=DashboardProxyConfig(trusted=("10.0.0.0/8", "127.0.0.1")),
)
KEY = b"k" * 32


def test_password_hashes_verify_and_resist_tampering() -> None:
    assert HASH.startswith("scrypt$16384$8$1$")
    assert auth.verify_password("s3cret", HASH)
    assert not auth.verify_password("s3cret ", HASH)
    assert not auth.verify_password("s3cret", HASH[:-2] + "AA")
    assert not auth.verify_password("s3cret", None)
    assert not auth.verify_password("s3cret", "plain-text")
    assert auth.hash_password("s3cret") != auth.hash_password("s3cret")  # salted


@pytest.mark.parametrize(
    ("user", "password", "expected"),
    [
        ("alice", "s3cret", ("alice", "operator", "session")),
        ("victor", "s3cret", ("victor", "viewer", "session")),
        ("alice", "wrong", None),
        ("nobody", "s3cret", None),
        ("sso-only", "", None),  # no password hash: only through the proxy
    ],
)
def test_login(user: str, password: str, expected: tuple[str, str, str] | None) -> None:
    who = auth.login(DASH, user, password)
    assert (who and (who.name, who.role, who.via)) == expected


def test_sessions_are_signed_and_expire() -> None:
    value = auth.sign_session(KEY, "alice", now=1000.0)
    session = auth.read_session(KEY, value, now=1500.0, ttl=3600)
    assert session is not None and session.user == "alice" and session.csrf
    assert auth.read_session(KEY, value, now=1000.0 + 3601, ttl=3600) is None
    assert auth.read_session(b"x" * 32, value, now=1500.0, ttl=3600) is None
    _payload, sig = value.split(".")
    forged = auth._b64(b'{"u":"victor","t":1000,"c":"x"}') + "." + sig
    assert auth.read_session(KEY, forged, now=1500.0, ttl=3600) is None
    assert auth.read_session(KEY, "garbage", now=1500.0, ttl=3600) is None
    assert auth.read_session(KEY, None, now=1500.0, ttl=3600) is None
    assert auth.session_principal(DASH, session) == auth.Principal("alice", "operator", "session")
    gone = auth.read_session(KEY, auth.sign_session(KEY, "mallory", 1000.0), 1500.0, 3600)
    assert auth.session_principal(DASH, gone) is None  # removed from the config since


def test_csrf_token_must_match_the_session() -> None:
    session = auth.read_session(KEY, auth.sign_session(KEY, "", 1000.0, csrf="abc"), 1001, 60)
    assert auth.csrf_ok(session, "abc")
    assert not auth.csrf_ok(session, "abd")
    assert not auth.csrf_ok(session, None)
    assert not auth.csrf_ok(None, "abc")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer " + "t" * 40, "ci"),
        ("bearer " + "t" * 40, "ci"),
        ("Bearer " + "t" * 39, None),
        ("Basic " + "t" * 40, None),
        ("Bearer ", None),
        (None, None),
    ],
)
def test_bearer_tokens(header: str | None, expected: str | None) -> None:
    who = auth.token_principal(DASH, header)
    assert (who.name if who else None) == expected


@pytest.mark.parametrize(
    ("ip", "name", "expected"),
    [
        ("10.1.2.3", "alice", ("alice", "operator")),  # listed user: its role
        ("10.1.2.3", "sso-only", ("sso-only", "operator")),
        ("127.0.0.1", "bob", ("bob", "viewer")),  # unlisted: the proxy's role
        ("192.168.1.5", "alice", None),  # not a trusted proxy: the header is ignored
        ("10.1.2.3", "", None),
        ("not-an-ip", "alice", None),
    ],
)
def test_proxy_header_only_from_trusted_addresses(
    ip: str, name: str, expected: tuple[str, str] | None
) -> None:
    who = auth.proxy_principal(DASH, ip, {"x-forwarded-user": name})
    assert (who and (who.name, who.role)) == expected


def test_login_limiter_counts_failures_per_address_in_a_window() -> None:
    limiter = auth.LoginLimiter(attempts=3, window=60.0, remember=2)
    for t in (0.0, 1.0, 2.0):
        assert limiter.retry_after("a", t) == 0
        limiter.failed("a", t)
    assert limiter.retry_after("a", 3.0) == pytest.approx(57.0)
    assert limiter.retry_after("b", 3.0) == 0  # another address
    assert limiter.retry_after("a", 60.5) == 0  # the first failure aged out
    limiter.succeeded("a")
    assert limiter.retry_after("a", 3.0) == 0
    for who in ("x", "y", "z"):  # memory is bounded: the oldest address is forgotten
        limiter.failed(who, 0.0)
    assert set(limiter._failures) == {"y", "z"}


@pytest.mark.parametrize(
    ("dash", "listen", "refused"),
    [
        (DashboardConfig(), "127.0.0.1:9465", False),
        (DashboardConfig(), "localhost:9465", False),
        (DashboardConfig(), "[::1]:9465", False),
        (DashboardConfig(), "0.0.0.0:9465", True),
        (DashboardConfig(), "10.0.0.5:9465", True),
        (DASH, "0.0.0.0:9465", False),
    ],
)
def test_an_open_console_listens_on_loopback_only(
    dash: DashboardConfig, listen: str, refused: bool
) -> None:
    assert bool(auth.listen_refusal(dash, listen)) == refused


def test_principal_roles_and_audit_names() -> None:
    assert auth.Principal("alice", "operator", "session").actor == "user:alice"
    assert auth.Principal("ci", "viewer", "token").actor == "token:ci"
    assert not auth.Principal("ci", "viewer", "token").may_act
    assert not auth.ANONYMOUS.may_act


async def test_the_live_broker_is_bounded() -> None:
    broker = live.Broker(max_clients=2)
    a, b = broker.open(), broker.open()
    with pytest.raises(live.Full):
        broker.open()
    for i in range(live.QUEUE_SIZE + 50):
        broker.publish({"type": "job", "key": str(i)})
    assert a.queue.qsize() == live.QUEUE_SIZE  # a slow page never holds more
    events = [a.queue.get_nowait() for _ in range(a.queue.qsize())]
    assert events[-1] == {"type": "resync", "dropped": a.dropped}
    broker.close(a)
    broker.close(b)
    assert broker.open() is not None
    frames = live.stream(broker, broker.open(), {"type": "hello"})
    assert await anext(frames) == 'event: hello\ndata: {"type":"hello"}\n\n'
    broker.shutdown()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(frames), 1)


def test_the_dashboard_section() -> None:
    config = parse_config(
        f"""
dashboard:
  listen: 0.0.0.0:8080
  users:
    alice: {{password_hash: "{HASH}", role: operator}}
  tokens:
    ci: {{token: "{"t" * 40}"}}
  proxy: {{trusted: [10.0.0.0/8], header: X-Auth-Request-User}}
  session_ttl: 8h
"""
    )
    dash = config.dashboard
    assert dash is not None and dash.listen == "0.0.0.0:8080"
    assert dash.users["alice"].role == "operator" and dash.tokens["ci"].role == "viewer"
    assert dash.proxy == DashboardProxyConfig("X-Auth-Request-User", ("10.0.0.0/8",), "viewer")
    assert dash.session_ttl == 8 * 3600
    assert "t" * 40 not in repr(config) and HASH not in repr(config)  # secrets stay out
    assert parse_config("queues: {default: {}}").dashboard is None


def test_dashboard_section_errors_name_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            """dashboard:
  listen: 0.0.0.0:8080
  users:
    alice: {password_hash: hunter2, role: admin}
  tokens:
    ci: {token: short}
  proxy: {trusted: [nope]}
  secret_key: x
""",
            "naq.yaml",
        )
    text = str(caught.value)
    assert "naq.yaml:4:28: dashboard.users.alice.password_hash: expected a password hash" in text
    assert "hunter2" not in text
    assert 'naq.yaml:4:43: dashboard.users.alice.role: expected "viewer" or "operator"' in text
    assert "naq.yaml:6:17: dashboard.tokens.ci.token: expected a secret of at least" in text
    assert "naq.yaml:7:21: dashboard.proxy.trusted[0]: expected an IP address or network" in text
    assert "naq.yaml:8:15: dashboard.secret_key: expected a secret" in text
    with pytest.raises(ConfigError) as open_console:
        parse_config("dashboard:\n  listen: 0.0.0.0:8080\n", "naq.yaml")
    assert "naq.yaml:2:11: dashboard.listen: a dashboard without users" in str(open_console.value)
