"""The console's JSON API against a real daemon on a real nats-server: who may read and
act (401, 403, CSRF, tokens, sessions, the login limit), what a missing thing answers
(404, never 500), a lost race (409/404, never a second copy), bulk actions with a dry
run, the audit trail, and a NATS outage (503 and a banner, then recovery by itself)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import naqd_executable
from tests.dashboard.helpers import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    Browserless,
    Console,
    start_console,
    stop_console,
)
from tests.natsserver import free_port, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    c = start_console(tmp_path_factory.mktemp("console"))
    yield c
    stop_console(c)


def dead_letters(c: Console, **filters: str) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return Browserless(c.url, OPERATOR_TOKEN).get(f"/api/v1/dead-letters?{query}").json()["items"]


def wait_dead(c: Console, job_id: str) -> None:
    wait_until(lambda: any(d["id"] == job_id for d in dead_letters(c)), 20, what="dead letter")


def test_strangers_get_401_and_browsers_a_login_redirect(console: Console) -> None:
    anon = Browserless(console.url)
    r = anon.get("/api/v1/queues")
    assert r.status == 401 and "log in" in r.json()["error"]
    page = anon.get("/dead-letters")
    assert page.status == 303 and page.headers["location"] == "/login?next=/dead-letters"
    assert Browserless(console.url, "not-a-token").get("/api/v1/queues").status == 401


def test_tokens_read_and_only_operators_act(console: Console) -> None:
    viewer = Browserless(console.url, VIEWER_TOKEN)
    assert viewer.get("/api/v1/me").json() == {"name": "grafana", "role": "viewer", "via": "token"}
    assert viewer.get("/api/v1/queues").status == 200
    denied = viewer.post("/api/v1/queues/default/pause")
    assert denied.status == 403 and "viewer" in denied.json()["error"]
    # A bearer token needs no CSRF token: no cookie can carry it.
    op = Browserless(console.url, OPERATOR_TOKEN)
    assert op.post("/api/v1/queues/other/pause").status == 200
    assert op.post("/api/v1/queues/other/resume").status == 200


def test_a_session_needs_its_csrf_token_to_act(console: Console) -> None:
    alice = Browserless(console.url)
    assert alice.login("alice").status == 303
    me = alice.get("/api/v1/me").json()
    assert me == {"name": "alice", "role": "operator", "via": "session"}
    no_token = alice.post("/api/v1/queues/other/pause", csrf=False)
    assert no_token.status == 403 and "CSRF" in no_token.json()["error"]
    wrong = alice.post("/api/v1/queues/other/pause", csrf=False, headers={"X-CSRF-Token": "x"})
    assert wrong.status == 403
    assert alice.post("/api/v1/queues/other/pause").status == 200
    assert alice.post("/api/v1/queues/other/resume").status == 200
    victor = Browserless(console.url)
    assert victor.login("victor").status == 303
    assert victor.post("/api/v1/queues/other/pause").status == 403


def test_wrong_passwords_get_401_until_the_limit_then_429(console: Console) -> None:
    # A proxy address of its own would be nicer; the limit is per client address, so
    # this test logs in successfully first and ends with the limit reached.
    mallory = Browserless(console.url)
    for _ in range(3):
        r = mallory.login("alice", "wrong")
        assert r.status == 401 and b"wrong user or password" in r.body
    limited = mallory.login("alice", "wrong")
    assert limited.status == 429 and int(limited.headers["retry-after"]) >= 1
    # Even the right password waits out the limit: nothing is checked meanwhile.
    assert mallory.login("alice").status == 429


def test_missing_things_are_404_not_500(console: Console) -> None:
    op = Browserless(console.url, OPERATOR_TOKEN)
    for method, path in [
        ("GET", "/api/v1/jobs/no-such-job"),
        ("GET", "/api/v1/dead-letters/no-such-job"),
        ("POST", "/api/v1/dead-letters/no-such-job/requeue"),
        ("DELETE", "/api/v1/dead-letters/no-such-job"),
        ("POST", "/api/v1/jobs/no-such-job/cancel"),
        ("POST", "/api/v1/queues/nope/pause"),
        ("POST", "/api/v1/schedules/nope/trigger"),
        ("GET", "/api/v1/queues/nope"),
        ("GET", "/api/v1/nothing-here"),
    ]:
        r = op.request(method, path)
        assert r.status == 404, (method, path, r.status, r.body)
        assert r.json()["error"], path
    assert op.get("/api/v1/jobs?state=bogus").status == 400
    assert op.get("/api/v1/jobs?cursor=zz:1").status == 400


def test_requeue_twice_gives_409_or_404_and_one_copy(console: Console) -> None:
    op = Browserless(console.url, OPERATOR_TOKEN)
    job = console.enqueue("tests.tasks:fail", '"boom"', job_id="api-twice")
    wait_dead(console, job)
    # Park the queue so the requeued job waits (it would fail into the DLQ again).
    assert op.post("/api/v1/queues/default/pause").status == 200
    try:
        first = op.post(f"/api/v1/dead-letters/{job}/requeue")
        assert first.status == 200 and first.json()["count"] == 1
        second = op.post(f"/api/v1/dead-letters/{job}/requeue")
        assert second.status in (404, 409), second.body
        queued = op.get("/api/v1/jobs?queue=default&state=queued").json()["items"]
        assert [j["id"] for j in queued].count(job) == 1
    finally:
        assert op.post("/api/v1/queues/default/resume").status == 200
    wait_dead(console, job)  # it ran (and failed) once more


def test_bulk_requeue_dry_run_counts_and_no_match_does_nothing(console: Console) -> None:
    op = Browserless(console.url, OPERATOR_TOKEN)
    ids = [console.enqueue("tests.tasks:fail", '"x"', queue="other") for _ in range(2)]
    for job in ids:
        wait_dead(console, job)
    nothing = op.post(
        "/api/v1/dead-letters/requeue", {"queue": "other", "task": "no.such:task"}
    ).json()
    assert nothing["count"] == 0 and "no dead letters match" in nothing["message"]
    dry = op.post("/api/v1/dead-letters/delete", {"queue": "other", "dry_run": True}).json()
    assert dry["dry_run"] and dry["count"] == 2
    assert len(dead_letters(console, queue="other")) == 2  # a dry run changes nothing
    done = op.post("/api/v1/dead-letters/delete", {"queue": "other"}).json()
    assert done["count"] == 2
    assert dead_letters(console, queue="other") == []
    everything = op.post("/api/v1/dead-letters/requeue", {})
    assert everything.status == 400  # an empty filter must say all: true
    assert op.post("/api/v1/dead-letters/requeue", {"bogus": 1}).status == 400


def test_every_action_is_in_the_audit_trail(console: Console) -> None:
    op = Browserless(console.url, OPERATOR_TOKEN)
    op.post("/api/v1/queues/other/pause")
    op.post("/api/v1/queues/other/resume")
    op.post("/api/v1/dead-letters/no-such-job/requeue")
    entries = op.get("/api/v1/audit?limit=20").json()["items"]
    seen = [(e["actor"], e["action"], e["target"], e["result"]) for e in entries]
    assert ("token:ci", "queue.resume", "other", "ok") in seen
    assert ("token:ci", "queue.pause", "other", "ok") in seen
    assert ("token:ci", "dlq.requeue", "no-such-job", "not_found") in seen
    assert all(e["via"] == "api" for e in entries if e["actor"] == "token:ci")
    cli = subprocess.run(
        [naqd_executable(), "audit", "--servers", console.nats.url, "--json"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if cli.returncode == 0:  # `naqd audit` comes with the data layer
        assert "queue.pause" in cli.stdout


def test_lists_paginate_with_a_cursor(console: Console) -> None:
    op = Browserless(console.url, OPERATOR_TOKEN)
    for i in range(3):
        console.enqueue("tests.tasks:add", str(i), "1", job_id=f"page-{i}")
    wait_until(lambda: len(op.get("/api/v1/jobs?state=succeeded&q=page-").json()["items"]) >= 3, 20)
    first = op.get("/api/v1/jobs?state=succeeded&limit=2").json()
    assert len(first["items"]) == 2 and first["cursor"]
    second = op.get(f"/api/v1/jobs?state=succeeded&limit=2&cursor={first['cursor']}").json()
    assert not {j["id"] for j in first["items"]} & {j["id"] for j in second["items"]}


def test_events_stream_speaks_sse(console: Console) -> None:
    req = urllib.request.Request(
        console.url + "/api/v1/events", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.readline() == b"event: hello\n"
        hello = json.loads(r.readline().removeprefix(b"data: "))
        assert hello["nats"] is True


def test_an_open_console_refuses_to_listen_beyond_loopback(console: Console) -> None:
    port = free_port()
    done = subprocess.run(
        [naqd_executable(), "dashboard", "--servers", console.nats.url,
         "--listen", f"0.0.0.0:{port}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 78
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "dashboard.users" in lines[0] and "127.0.0.1" in lines[0]


def test_naqd_check_names_the_line_of_an_open_console(tmp_path: Path) -> None:
    config = tmp_path / "naq.yaml"
    config.write_text("dashboard:\n  listen: 0.0.0.0:9465\n")
    done = subprocess.run(
        [naqd_executable(), "check", "--config", str(config)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 78
    assert f"{config}:2:11: dashboard.listen: a dashboard without users" in done.stderr


def test_a_nats_outage_is_503_with_a_banner_and_heals_by_itself(console: Console) -> None:
    """Last in the module: it stops the NATS server under the daemon."""
    op = Browserless(console.url, OPERATOR_TOKEN)
    alice = Browserless(console.url)
    assert alice.login("alice").status in (303, 429)  # the limit test may still hold
    console.nats.stop()
    try:
        wait_until(lambda: op.get("/api/v1/queues").status == 503, 20, what="503")
        r = op.get("/api/v1/jobs/anything")
        assert r.status == 503 and "NATS" in r.json()["error"]
        page = op.get("/dead-letters")
        assert page.status == 503
        assert b'id="banner" class="banner" >' in page.body or b'class="banner" >' in page.body
    finally:
        console.nats.start()
    wait_until(lambda: op.get("/api/v1/queues").status == 200, 30, what="recovery")
    page = op.get("/")
    assert page.status == 200 and b'class="banner" hidden' in page.body
    time.sleep(0)  # nothing else to wait for: the console recovered without a restart


def test_the_supervisor_points_at_its_console(console: Console) -> None:
    r = Browserless(console.metrics_url).get("/")
    assert r.status == 302 and r.headers["Location"] == console.url + "/"
    # Healthy again (the outage test may have just ended: children reconnect first).
    wait_until(lambda: Browserless(console.metrics_url).get("/healthz").status == 200, 30)


def test_naqd_dashboard_on_its_own_is_read_only_without_users(console: Console) -> None:
    """`naqd dashboard --servers ... --host --port`: no users or tokens, so anyone on
    loopback reads and nobody acts; SIGTERM stops it with 0."""
    import signal

    port = free_port()
    proc = subprocess.Popen(
        [naqd_executable(), "dashboard", "--servers", console.nats.url,
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        anyone = Browserless(f"http://127.0.0.1:{port}")
        wait_until(lambda: anyone.get("/api/v1/queues").status == 200, 30, what="standalone")
        names = {q["name"] for q in anyone.get("/api/v1/queues").json()["items"]}
        assert {"default", "other"} <= names  # the whole cluster, read from NATS
        assert anyone.get("/api/v1/me").json()["via"] == "anonymous"
        page = anyone.get("/")
        assert page.status == 200 and b"Read-only console" in page.body
        assert b'button class="act' not in page.body and b'class="act' not in page.body
        assert anyone.post("/api/v1/queues/default/pause").status == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
