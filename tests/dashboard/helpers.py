"""A real naqd daemon with a `dashboard:` section on a real nats-server, and a small HTTP
client (cookies, CSRF) for the console's API tests and browser tests."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naqd.dashboard.auth import hash_password
from tests.conftest import Daemon, naqd_executable
from tests.natsserver import NatsServer, free_port, wait_until

PASSWORD = "correct horse battery"
OPERATOR_TOKEN = "op-" + "a" * 40
VIEWER_TOKEN = "ro-" + "b" * 40
HASH = hash_password(PASSWORD)


def console_yaml(nats_url: str, port: int, metrics_port: int, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        nats:
          servers: [{nats_url}]
          replicas: {3 if "," in nats_url else 1}
        tasks:
          imports: [tests.tasks]
        queues:
          default: {{concurrency: 4, retries: 0}}
          other: {{concurrency: 2, retries: 0}}
        heartbeat: {{interval: 1s}}
        metrics: {{listen: "127.0.0.1:{metrics_port}"}}
        dashboard:
          listen: 127.0.0.1:{port}
          users:
            alice: {{password_hash: "{HASH}", role: operator}}
            victor: {{password_hash: "{HASH}", role: viewer}}
          tokens:
            ci: {{token: "{OPERATOR_TOKEN}", role: operator}}
            grafana: {{token: "{VIEWER_TOKEN}", role: viewer}}
          login_attempts: 3
        """
    ) + textwrap.dedent(extra)


@dataclass
class Console:
    """The daemon, its NATS server and the console's base URL."""

    daemon: Daemon
    nats: NatsServer
    url: str
    metrics_url: str
    tmp: Path

    def naqd(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [naqd_executable(), *args, "--servers", self.nats.url],
            capture_output=True, text=True, timeout=timeout, cwd=self.tmp,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )  # fmt: skip

    def enqueue(
        self, task: str, *args: str, job_id: str | None = None, queue: str = "default"
    ) -> str:
        extra = ["--job-id", job_id] if job_id else []
        done = self.naqd("enqueue", task, *args, "--queue", queue, *extra)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def start_console(tmp: Path, extra: str = "", nats: Any = None) -> Console:
    """`nats`: a started server (or a cluster with a comma-joined `url`); default: a new
    single server under `tmp`."""
    own = nats is None  # the server is ours to stop if the start fails
    nats = nats or NatsServer(tmp / "nats").start()
    port, metrics_port = free_port(), free_port()
    config = tmp / "naq.yaml"
    config.write_text(console_yaml(nats.url, port, metrics_port, extra))
    daemon = Daemon(config, tmp / "naqd.log").start()
    url = f"http://127.0.0.1:{port}"
    # On a cluster every stream and bucket is created with three replicas, each waiting
    # for its own leader election: on a busy 2-core box that took over 30 s once.
    ready = 90 if "," in nats.url else 30
    try:
        daemon.wait_for_log("dashboard on", timeout=ready)
        daemon.wait_for_log("ready: queue", count=2, timeout=ready)
        wait_until(
            lambda: status(url + "/api/v1/me", token=VIEWER_TOKEN) == 200, 20, what="console"
        )
    except BaseException:  # no fixture teardown follows a failed set-up: stop it here
        daemon.stop()
        if own:
            nats.stop()
        raise
    return Console(daemon, nats, url, f"http://127.0.0.1:{metrics_port}", tmp)


def stop_console(console: Console) -> None:
    console.daemon.stop()
    console.nats.stop()


# -- HTTP ------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browserless:
    """Requests as a browser makes them (cookies, no redirects followed), or with a token."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )
        self.csrf = ""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        csrf: bool = True,
    ) -> Reply:
        hdrs = dict(headers or {})
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if csrf and self.csrf and method != "GET":
            hdrs.setdefault("X-CSRF-Token", self.csrf)
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with self.opener.open(req, timeout=15) as r:
                reply = Reply(r.status, r.read(), dict(r.headers))
        except urllib.error.HTTPError as e:
            reply = Reply(e.code, e.read(), dict(e.headers))
            e.close()
        except OSError:  # not listening (yet)
            return Reply(0, b"")
        found = re.search(rb'name="csrf-token" content="([^"]*)"', reply.body)
        if found and found.group(1):
            self.csrf = found.group(1).decode()
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def login(self, user: str, password: str = PASSWORD) -> Reply:
        self.get("/login")
        reply = self.post(
            "/login", form={"user": user, "password": password, "csrf": self.csrf, "next": "/"}
        )
        if reply.status == 303:
            self.get("/workers")  # as the browser follows: the new session's CSRF token
        return reply


def status(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0
