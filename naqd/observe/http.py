"""The supervisor's HTTP endpoint: /metrics, /healthz, the status page (/) and its data
(/api/status). Served from a daemon thread because the supervisor loop is synchronous.
No auth: keep it on loopback or behind a proxy (docs/status.md)."""

from __future__ import annotations

import json
import os
import platform
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from loguru import logger

from naqd.observe.health import ChildHealth, ChildView, all_healthy, assess


@dataclass(frozen=True)
class SupervisorView:
    """An immutable picture of the supervisor, replaced (not mutated) by its loop, so the
    HTTP thread never sees a half-updated state."""

    children: tuple[ChildView, ...] = ()
    restarts: dict[str, int] = field(default_factory=dict)
    reload_ok: bool = True
    reload_at: float = 0.0  # unix time of the last successful (re)load
    stale_after: float = 15.0
    started_at: float = 0.0  # unix time
    health_grace: float = 0.0  # metrics.health_grace
    nats_server: str | None = None  # the embedded server: "up" | "down"; None when external
    nats_server_pid: int | None = None
    nats_server_restarts: int = 0

    def health(self, now: float | None = None) -> list[ChildHealth]:
        at = time.monotonic() if now is None else now
        return [assess(c, at, self.stale_after, self.health_grace) for c in self.children]

    def healthy(self, health: list[ChildHealth]) -> bool:
        """/healthz: every child healthy (or within its grace) and our NATS server up."""
        return all_healthy(health) and self.nats_server in (None, "up")


class SupervisorCollector:
    """Metrics only the supervisor knows; everything else comes from the children's files."""

    def __init__(self, view: Callable[[], SupervisorView]) -> None:
        self.view = view

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from naqd import __version__

        view = self.view()
        health = view.health()
        yield _gauge(
            "naqd_worker_processes",
            "Worker processes running on this host",
            sum(1 for h in health if h.role == "worker" and h.pid is not None),
        )
        restarts = CounterMetricFamily(
            "naqd_child_restarts", "Children restarted after dying unexpectedly", labels=["role"]
        )
        for role in sorted({c.role for c in view.children} | set(view.restarts)):
            restarts.add_metric([role], view.restarts.get(role, 0))
        yield restarts
        up = GaugeMetricFamily(
            "naqd_child_healthy",
            "1 while a child beats from its loop, is ready and has NATS",
            labels=["role", "queue", "index", "pool"],
        )
        age = GaugeMetricFamily(
            "naqd_child_heartbeat_age_seconds",
            "Seconds since a child's event loop last beat",
            labels=["role", "queue", "index", "pool"],
        )
        for child, h in zip(view.children, health, strict=True):
            labels = [child.role, child.queue, str(child.index), child.pool]
            up.add_metric(labels, 1.0 if h.state == "healthy" else 0.0)
            if h.age is not None:
                age.add_metric(labels, h.age)
        yield up
        yield age
        rss = GaugeMetricFamily(
            "naqd_child_resident_memory_bytes",
            "Resident memory of each child process (and of the embedded nats-server)",
            labels=["role", "queue", "index", "pool"],
        )
        for child in view.children:
            used = resident_bytes(child.pid) if child.pid else None
            if used is not None:
                rss.add_metric([child.role, child.queue, str(child.index), child.pool], used)
        if view.nats_server_pid is not None:
            used = resident_bytes(view.nats_server_pid)
            if used is not None:
                rss.add_metric(["nats-server", "", "0", ""], used)
        yield rss
        live = [h for h in health if h.pid is not None]
        connected = bool(live) and all(h.connected for h in live)
        yield _gauge(
            "naqd_nats_connected", "1 while every child has its NATS connection", connected
        )
        yield _gauge(
            "naqd_config_last_reload_successful",
            "0 after a reload whose config was rejected",
            view.reload_ok,
        )
        yield _gauge(
            "naqd_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config (re)load",
            view.reload_at,
        )
        yield _gauge("naqd_start_time_seconds", "Unix time the supervisor started", view.started_at)
        if view.nats_server is not None:
            yield _gauge(
                "naqd_embedded_server_up",
                "1 while the embedded nats-server naqd started answers as itself",
                view.nats_server == "up",
            )
            yield CounterMetricFamily(
                "naqd_embedded_server_restarts",
                "Times the embedded nats-server died and was started again",
                value=view.nats_server_restarts,
            )
        info = GaugeMetricFamily(
            "naqd_build_info",
            "Versions of naqd, Python and nats-py; always 1",
            labels=["version", "python", "nats_py"],
        )
        info.add_metric([__version__, platform.python_version(), _nats_version()], 1.0)
        yield info


def resident_bytes(pid: int) -> float | None:
    """A process's resident set size from /proc (Linux); None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return None


def _gauge(name: str, doc: str, value: float) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, doc, value=float(value))


def _nats_version() -> str:
    try:
        from importlib.metadata import version

        return version("nats-py")
    except Exception:
        return "unknown"


class ObserveServer:
    def __init__(
        self,
        listen: str,
        view: Callable[[], SupervisorView],
        metrics_dir: Path,
        status_path: Path,
    ) -> None:
        host, _, port = listen.rpartition(":")
        self.address = (host.strip("[]") or "127.0.0.1", int(port))
        self.view = view
        self.metrics_dir = metrics_dir
        self.status_path = status_path
        self.collector = SupervisorCollector(view)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def start(self) -> None:
        """Bind (raises OSError when the port is taken) and serve from a daemon thread."""
        handler = type("Handler", (_Handler,), {"observe": self})
        if ":" in self.address[0]:
            server_cls = type(
                "Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6}
            )
        else:
            server_cls = ThreadingHTTPServer
        self._server = server_cls(self.address, handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="naqd-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- responses ----------------------------------------------------------------------

    def metrics(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        from naqd.observe.metricfiles import LOCK

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.metrics_dir))
        registry.register(self.collector)  # type: ignore[arg-type]
        with LOCK:  # no dead child's files folded meanwhile
            return generate_latest(registry), CONTENT_TYPE_LATEST

    def healthz(self) -> tuple[int, dict[str, Any]]:
        view = self.view()
        health = view.health()
        ok = view.healthy(health)
        body: dict[str, Any] = {
            "healthy": ok,
            "children": [
                {
                    "child": h.label,
                    "pid": h.pid,
                    "state": h.state,
                    "heartbeat_age": h.age,
                    "in_grace": h.in_grace,
                }
                for h in health
            ],
        }
        if view.nats_server is not None:
            body["nats_server"] = {"state": view.nats_server, "pid": view.nats_server_pid}
        return (200 if ok else 503), body

    def status(self) -> dict[str, Any]:
        """Local children (live from shared memory) plus the cluster snapshot a child
        wrote; the page shows how old that snapshot is."""
        view = self.view()
        code, local = self.healthz()
        cluster: Any = None
        age = None
        try:
            cluster = json.loads(self.status_path.read_text())
            age = round(max(0.0, time.time() - self.status_path.stat().st_mtime), 1)
        except (OSError, ValueError):
            pass
        return {
            "now": time.time(),
            "healthy": code == 200,
            "children": local["children"],
            "started_at": view.started_at,
            "config_reload_ok": view.reload_ok,
            "cluster": cluster,
            "cluster_age": age,
        }


class _Handler(BaseHTTPRequestHandler):
    observe: ObserveServer
    server_version = "naqd"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                body, ctype = self.observe.metrics()
                self._send(200, body, ctype)
            elif path == "/healthz":
                code, data = self.observe.healthz()
                self._send(code, json.dumps(data).encode(), "application/json")
            elif path == "/api/status":
                data = json.dumps(self.observe.status(), default=str).encode()
                self._send(200, data, "application/json")
            elif path in ("/", "/index.html"):
                from naqd.observe.page import PAGE

                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain")
        except Exception:
            logger.exception("HTTP {} failed", path)
            self._send(500, b"internal error\n", "text/plain")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.trace("http: {}", format % args)
