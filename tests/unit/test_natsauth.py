"""NATS connect options from config, and which connect errors are fatal: pure parts."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from nats.errors import AuthorizationError
from nats.errors import Error as NatsError

from naqd.client.errors import NatsAuthError
from naqd.config import parse_config
from naqd.transport import natsauth


def nats_cfg(text: str, **env: str):
    return parse_config(text, "naq.yaml", env=env).nats


def test_password_file_and_token_file_are_read(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "tok").write_text("t0ken\n")
    opts = natsauth.connect_options(
        nats_cfg(f"nats: {{user: bob, password_file: {tmp_path / 'pw'}}}")
    )
    assert opts == {"user": "bob", "password": "s3cret"}
    opts = natsauth.connect_options(nats_cfg(f"nats: {{token_file: {tmp_path / 'tok'}}}"))
    assert opts == {"token": "t0ken"}


def test_missing_secret_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NatsAuthError, match=r"cannot read password_file .*/nope"):
        natsauth.connect_options(nats_cfg(f"nats: {{user: a, password_file: {tmp_path}/nope}}"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(NatsAuthError, match="is empty"):
        natsauth.connect_options(nats_cfg(f"nats: {{token_file: {tmp_path / 'empty'}}}"))
    with pytest.raises(NatsAuthError, match=r"credentials file .* not found"):
        natsauth.connect_options(nats_cfg(f"nats: {{creds_file: {tmp_path}/x.creds}}"))


def test_tls_is_used_when_configured_or_implied() -> None:
    assert "tls" not in natsauth.connect_options(nats_cfg("nats: {servers: [nats://h:1]}"))
    opts = natsauth.connect_options(nats_cfg("nats: {servers: [tls://h:1]}"))
    assert isinstance(opts["tls"], ssl.SSLContext)
    assert natsauth.tls_enforced(nats_cfg("nats: {servers: [tls://h:1]}"))
    assert natsauth.tls_enforced(nats_cfg("nats: {tls_required: true}"))
    assert not natsauth.tls_enforced(nats_cfg("nats: {servers: [nats://h:1]}"))
    with pytest.raises(NatsAuthError, match=r"cannot load the nats\.tls files"):
        natsauth.connect_options(nats_cfg("nats: {tls: {ca_file: /nonexistent/ca.pem}}"))


@pytest.mark.parametrize(
    ("exc", "fatal"),
    [
        (AuthorizationError(), True),
        (NatsError("nats: 'Authorization Violation'"), True),
        (NatsError("nats: 'User Authentication Expired'"), True),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), True),
        (ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED]"), True),
        (ConnectionRefusedError(111, "refused"), False),
        (TimeoutError(), False),
        (NatsError("nats: 'Permissions Violation for Publish to \"x\"'"), False),
    ],
)
def test_fatal_reasons(exc: BaseException, fatal: bool) -> None:
    assert (natsauth.fatal_reason(exc) is not None) is fatal


def test_messages_never_carry_secrets() -> None:
    assert natsauth.safe_url("nats://bob:hunter2@10.0.0.1:4222") == "nats://10.0.0.1:4222"
    assert "hunter2" not in natsauth.auth_method({"user": "bob", "password": "hunter2"})
    assert natsauth.auth_method({"token": "abc"}) == "a token"
