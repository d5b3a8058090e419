"""naqd.contrib.fastapi against a real nats-server: the lifespan's client reaches the
endpoints, and NATS going away answers 503 with Retry-After, never a traceback."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from examples.testing.webapp import create_app
from naqd.contrib.fastapi import NaqdClient, add_error_handler
from naqd.testing import NatsServer, prepare_sync


def test_enqueue_while_nats_is_down_answers_503() -> None:
    server = NatsServer().start()
    try:
        prepare_sync(server.url)
        app = create_app(server.url, publish_deadline=0.5)
        with TestClient(app) as http:
            order = {"prices": [1.0]}
            assert http.post("/orders/total", json=order).status_code == 202
            server.stop()
            down = http.post("/orders/total", json=order)
            assert down.status_code == 503, down.text
            assert down.headers["Retry-After"] == "5"
            assert "job queue is unavailable" in down.json()["detail"]
        assert app.state.naqd is None  # closed at shutdown, without raising
    finally:
        server.stop()


def test_a_jobs_own_failure_is_not_a_503() -> None:
    """JobFailed is the job's outcome, not the queue's availability: 500, as any bug."""
    from naqd.client.errors import JobFailed

    app = FastAPI()
    add_error_handler(app)

    @app.get("/boom")
    async def boom() -> None:
        raise JobFailed("j1", "ValueError", "bad")

    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.get("/boom").status_code == 500


def test_the_dependency_without_the_lifespan_says_what_is_missing() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x(client: NaqdClient) -> None:
        raise AssertionError("not reached")

    with TestClient(app) as http, pytest.raises(RuntimeError, match="naqd_lifespan"):
        http.get("/x")
