"""NATS authentication, least-privilege permissions and TLS against a real nats-server
configured with accounts, users and certificates made in the test."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import nkeys
import pytest

from naqd import Client, SyncClient
from naqd.client.errors import EnqueueError, NatsAuthError
from naqd.config import parse_config
from naqd.transport.connection import connect_daemon
from tests.certs import Pki, make_ca, make_pki
from tests.conftest import Daemon
from tests.natsserver import NatsServer, free_port

WORKER_PASSWORD = "worker-secret-7f3a"
PRODUCER_PASSWORD = "producer-secret-91c2"

# Least privilege, as docs/security.md explains: the worker runs every queue, the
# producer may enqueue into "emails" only and read results.
ACCOUNTS = f"""
accounts {{
  NAQD {{
    jetstream: enabled
    users: [
      {{user: worker, password: "{WORKER_PASSWORD}", permissions: {{
        publish: [
          "$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.CREATE.NAQD_JOBS",
          "$JS.API.STREAM.UPDATE.NAQD_JOBS", "$JS.API.STREAM.CREATE.KV_naqd_results",
          "$JS.API.STREAM.UPDATE.KV_naqd_results", "$JS.API.CONSUMER.INFO.NAQD_JOBS.*",
          "$JS.API.CONSUMER.CREATE.NAQD_JOBS.>", "$JS.API.CONSUMER.DURABLE.CREATE.NAQD_JOBS.*",
          "$JS.API.CONSUMER.MSG.NEXT.NAQD_JOBS.*", "$JS.ACK.NAQD_JOBS.>",
          "$KV.naqd_results.>", "naqd.done.>",
          "$JS.API.STREAM.CREATE.KV_naqd_heartbeats", "$JS.API.STREAM.UPDATE.KV_naqd_heartbeats",
          "$KV.naqd_heartbeats.>",
          "$JS.API.STREAM.CREATE.NAQD_DLQ", "$JS.API.STREAM.UPDATE.NAQD_DLQ", "naqd.dlq.>",
          "$JS.API.STREAM.CREATE.NAQD_ADVISORIES", "$JS.API.STREAM.UPDATE.NAQD_ADVISORIES",
          "$JS.API.CONSUMER.INFO.NAQD_ADVISORIES.*", "$JS.API.CONSUMER.CREATE.NAQD_ADVISORIES.>",
          "$JS.API.CONSUMER.DURABLE.CREATE.NAQD_ADVISORIES.*",
          "$JS.API.CONSUMER.MSG.NEXT.NAQD_ADVISORIES.*", "$JS.ACK.NAQD_ADVISORIES.>",
          "$JS.API.STREAM.MSG.GET.NAQD_JOBS", "$JS.API.STREAM.MSG.DELETE.NAQD_JOBS",
          "$JS.API.DIRECT.GET.KV_naqd_results.>", "$JS.API.DIRECT.GET.KV_naqd_heartbeats.>",
          "$JS.API.STREAM.CREATE.KV_naqd_cancels", "$JS.API.STREAM.UPDATE.KV_naqd_cancels",
          "$JS.API.STREAM.CREATE.KV_naqd_unique", "$JS.API.STREAM.UPDATE.KV_naqd_unique",
          "$JS.API.CONSUMER.CREATE.KV_naqd_cancels", "$JS.API.CONSUMER.CREATE.KV_naqd_cancels.>",
          "$JS.API.CONSUMER.DELETE.KV_naqd_cancels.*", "$JS.FC.KV_naqd_cancels.>",
          "$JS.API.CONSUMER.INFO.KV_naqd_cancels.*", "$JS.API.CONSUMER.LIST.NAQD_JOBS",
          "$KV.naqd_unique.>",
          "$JS.API.STREAM.CREATE.KV_naqd_queues", "$JS.API.STREAM.UPDATE.KV_naqd_queues",
          "$KV.naqd_queues.>",
          "$JS.API.STREAM.CREATE.NAQD_AUDIT", "$JS.API.STREAM.UPDATE.NAQD_AUDIT"
        ]
        subscribe: [
          "_INBOX.>", "$KV.naqd_cancels.>", "$JS.EVENT.ADVISORY.CONSUMER.PAUSE.NAQD_JOBS.*"
        ]
      }}}},
      {{user: producer, password: "{PRODUCER_PASSWORD}", permissions: {{
        publish: [
          "naqd.jobs.emails",
          "$JS.API.STREAM.INFO.KV_naqd_results", "$JS.API.DIRECT.GET.KV_naqd_results.>",
          "$JS.API.STREAM.INFO.KV_naqd_queues", "$JS.API.DIRECT.GET.KV_naqd_queues.>",
          "$JS.API.CONSUMER.CREATE.KV_naqd_queues", "$JS.API.CONSUMER.CREATE.KV_naqd_queues.>",
          "$JS.API.CONSUMER.DELETE.KV_naqd_queues.*", "$JS.API.CONSUMER.INFO.KV_naqd_queues.*",
          "$JS.FC.KV_naqd_queues.>"
        ]
        subscribe: ["_INBOX.>", "naqd.done.>"]
      }}}}
    ]
  }}
}}
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsServer, Path]]:
    """A server with accounts and users, and a daemon running as the worker user."""
    tmp = tmp_path_factory.mktemp("secured")
    server = NatsServer(tmp / "nats", config=ACCOUNTS).start()
    (tmp / "worker.password").write_text(WORKER_PASSWORD + "\n")
    config = tmp / "naq.yaml"
    config.write_text(
        f"""
nats:
  servers: ["{server.url}"]
  user: worker
  password_file: {tmp / "worker.password"}
tasks: {{imports: [tests.tasks]}}
scheduler: {{enabled: false}}  # the worker user has no rights on the scheduler's buckets
metrics: {{listen: "127.0.0.1:{free_port()}"}}
queues:
  default: {{concurrency: 2, retries: 0}}
  emails: {{concurrency: 2, retries: 0}}
shutdown: {{grace_period: 5s}}
"""
    )
    daemon = Daemon(config, tmp / "naqd.log")
    try:  # a set-up that fails must not leave its processes to a later test's teardown
        daemon.start().wait_for_log("ready: queue", count=2)
        yield server, tmp
    finally:
        daemon.stop()
        server.stop()


def producer(url: str, **options: object) -> Client:
    return Client(
        url,
        connect_options={"user": "producer", "password": PRODUCER_PASSWORD},
        **options,  # type: ignore[arg-type]
    )


async def test_worker_with_least_privilege_runs_jobs_for_a_restricted_producer(
    secured: tuple[NatsServer, Path],
) -> None:
    server, _ = secured
    async with producer(server.url) as client:
        job = await client.enqueue("tests.tasks:add", 2, 3, queue="emails")
        assert await job.result(timeout=20) == 5


async def test_producer_restricted_to_one_queue_cannot_enqueue_into_another(
    secured: tuple[NatsServer, Path], tmp_path: Path
) -> None:
    server, _ = secured
    async with producer(server.url, publish_deadline=30) as client:
        started = time.monotonic()
        with pytest.raises(EnqueueError, match=r"NATS denied publishing to naqd\.jobs\.default"):
            await client.enqueue("tests.tasks:count_run", str(tmp_path), queue="default")
        assert time.monotonic() - started < 15  # the denial, not the publish deadline
        # The emails queue still works on the same connection; the other job never ran.
        job = await client.enqueue("tests.tasks:add", 1, 1, queue="emails")
        assert await job.result(timeout=20) == 2
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "options",
    [
        {"user": "producer", "password": "wrong"},
        {"user": "nobody", "password": "x"},
        {},  # no credentials at all
    ],
    ids=["wrong-password", "unknown-user", "anonymous"],
)
async def test_rejected_credentials_fail_fast_with_a_clear_message(
    secured: tuple[NatsServer, Path], options: dict[str, str]
) -> None:
    server, _ = secured
    started = time.monotonic()
    with pytest.raises(NatsAuthError, match="refused the connection: authorization violation"):
        await Client(server.url, connect_options=options).connect()
    assert time.monotonic() - started < 10


async def test_daemon_connection_fails_fast_on_a_wrong_password(
    secured: tuple[NatsServer, Path],
) -> None:
    server, _ = secured
    cfg = parse_config(
        f'nats: {{servers: ["{server.url}"], user: worker, password: "not-it"}}', env={}
    )
    with pytest.raises(NatsAuthError) as info:
        await connect_daemon(cfg.nats.urls, "test", nats_config=cfg.nats)
    assert "user 'worker' with a password" in str(info.value)
    assert "not-it" not in str(info.value)


def test_daemon_with_a_wrong_password_exits_with_a_config_error(
    secured: tuple[NatsServer, Path], tmp_path: Path
) -> None:
    server, _ = secured
    config = tmp_path / "naq.yaml"
    config.write_text(
        f"""
nats: {{servers: ["{server.url}"], user: worker, password: "hunter2-wrong"}}
tasks: {{imports: [tests.tasks]}}
queues: {{default: {{processes: 2}}}}
"""
    )
    daemon = Daemon(config, tmp_path / "naqd.log").start()
    try:
        assert daemon.wait(timeout=30) == 78
    finally:
        daemon.stop()
    log = daemon.log
    assert "authorization violation" in log
    assert "hunter2-wrong" not in log
    assert "restarting in" not in log


# --- TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[NatsServer]:
    """Mutual TLS: the server also verifies client certificates, plus a password."""
    tmp = tmp_path_factory.mktemp("tls")
    server = NatsServer(
        tmp / "nats",
        config=f"""
tls {{
  cert_file: "{pki.server_cert}"
  key_file: "{pki.server_key}"
  ca_file: "{pki.ca}"
  verify: true
  timeout: 2
}}
authorization {{ users: [ {{user: app, password: "tls-pass-1"}} ] }}
""",
    ).start()
    yield server
    server.stop()


def tls_config(url: str, pki: Pki, **tls: str) -> str:
    files = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert)}
    files["key_file"] = str(pki.client_key)
    files.update(tls)
    body = ", ".join(f'{k}: "{v}"' for k, v in files.items() if v)
    return f'nats: {{servers: ["{url}"], user: app, password: "tls-pass-1", tls: {{{body}}}}}\n'


async def test_tls_with_client_certificate_connects(tls_server: NatsServer, pki: Pki) -> None:
    cfg = parse_config(tls_config(tls_server.url, pki), env={})
    async with Client.from_config(cfg) as client:
        assert client.nc.is_connected
        assert client.nc._transport._io_writer.get_extra_info("ssl_object") is not None


def test_daemon_runs_jobs_over_mutual_tls_with_a_password(
    tls_server: NatsServer, pki: Pki, tmp_path: Path
) -> None:
    text = tls_config(tls_server.url, pki) + textwrap.dedent(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 2, retries: 0}}
        shutdown: {grace_period: 5s}
        """
    )
    config = tmp_path / "naq.yaml"
    config.write_text(text)
    daemon = Daemon(config, tmp_path / "naqd.log").start()
    try:
        daemon.wait_for_log("ready: queue")
        with SyncClient.from_config(parse_config(text, env={})) as client:
            assert client.enqueue("tests.tasks:add", 20, 1).result(timeout=20) == 21
    finally:
        daemon.stop()
    assert "tls-pass-1" not in daemon.log


async def test_tls_untrusted_server_certificate_fails_fast(
    tls_server: NatsServer, pki: Pki, tmp_path: Path
) -> None:
    other_ca, _ = make_ca(tmp_path, "other-")
    cfg = parse_config(tls_config(tls_server.url, pki, ca_file=str(other_ca)), env={})
    with pytest.raises(NatsAuthError, match="TLS certificate verification failed"):
        await Client.from_config(cfg).connect()


async def test_tls_without_client_certificate_fails_fast(tls_server: NatsServer, pki: Pki) -> None:
    text = (
        f'nats: {{servers: ["{tls_server.url}"], user: app, password: "tls-pass-1", '
        f'tls: {{ca_file: "{pki.ca}"}}}}\n'
    )
    started = time.monotonic()
    with pytest.raises(NatsAuthError, match="TLS"):
        await Client.from_config(parse_config(text, env={})).connect()
    assert time.monotonic() - started < 10


async def test_tls_required_refuses_a_plain_server(nats_server: NatsServer) -> None:
    cfg = parse_config(f'nats: {{servers: ["{nats_server.url}"], tls_required: true}}', env={})
    with pytest.raises(NatsAuthError, match="did not use TLS"):
        await Client.from_config(cfg).connect()


# --- token and NKey -------------------------------------------------------------------


@pytest.fixture(scope="module")
def nkey_seed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path = tmp_path_factory.mktemp("nkey") / "user.nk"
    path.write_bytes(seed + b"\n")
    return path, nkeys.from_seed(bytearray(seed)).public_key.decode()


@pytest.fixture(scope="module")
def multi_auth_server(
    tmp_path_factory: pytest.TempPathFactory, nkey_seed: tuple[Path, str]
) -> Iterator[NatsServer]:
    tmp = tmp_path_factory.mktemp("nkeyserver")
    server = NatsServer(
        tmp / "nats",
        config=f'authorization {{ users: [ {{nkey: "{nkey_seed[1]}"}} ] }}',
    ).start()
    yield server
    server.stop()


async def test_nkey_seed_file_authenticates(
    multi_auth_server: NatsServer, nkey_seed: tuple[Path, str], tmp_path: Path
) -> None:
    cfg = parse_config(
        f'nats: {{servers: ["{multi_auth_server.url}"], nkey_seed_file: "{nkey_seed[0]}"}}',
        env={},
    )
    async with Client.from_config(cfg) as client:
        assert client.nc.is_connected
    other = tmp_path / "other.nk"
    other.write_bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))
    bad = parse_config(
        f'nats: {{servers: ["{multi_auth_server.url}"], nkey_seed_file: "{other}"}}', env={}
    )
    with pytest.raises(NatsAuthError, match=f"NKey seed file {other}"):
        await Client.from_config(bad).connect()


async def test_token_from_env_authenticates(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", config='authorization { token: "tok-5e3b9c" }').start()
    try:
        text = f'nats: {{servers: ["{server.url}"], token: "${{NATS_TOKEN}}"}}'
        async with Client.from_config(parse_config(text, env={"NATS_TOKEN": "tok-5e3b9c"})):
            pass
        with pytest.raises(NatsAuthError, match="we sent a token"):
            await Client.from_config(parse_config(text, env={"NATS_TOKEN": "nope"})).connect()
    finally:
        server.stop()
