"""`python -m bench.console_http`: the console's pages and API over HTTP on big queues.

The same fill as bench/console.py (100,000 queued jobs, 10,000 dead letters, 10,000
results; BENCH_SCALE scales them), then a real `naqd dashboard` process serves it and
each request is timed end to end (NATS reads, rendering, HTTP), the median of RUNS
tries. Target: each within 300 ms (issue 19). Not part of `make bench`'s default run;
the explorer's own reads are bench/console.py's."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.console import N_DEAD, N_QUEUED, N_RESULTS, TARGET_MS, fill
from naqd import Client
from naqd.models import Config, NatsConfig
from naqd.protocol.resources import ensure_resources

RUNS = 5


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        e.close()
        return int(e.code)
    except OSError:  # not listening yet
        return 0


def body(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return bytes(r.read())
    except OSError:  # 503 until NATS answers, or a refused connection
        return b""


def timed(url: str) -> tuple[float, float, int]:
    samples, status = [], 0
    for _ in range(RUNS):
        t = time.perf_counter()
        status = get(url)
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), max(samples), status


async def filled(url: str) -> dict[str, str]:
    async with Client(url) as client:
        await ensure_resources(client._js, Config(nats=NatsConfig(servers=(url,))))
        return await fill(client)


def main() -> None:
    from tests.natsserver import NatsServer, free_port, wait_until

    with tempfile.TemporaryDirectory(prefix="naqd-bench-http-") as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        console = None
        try:
            t = time.perf_counter()
            ids = asyncio.run(filled(server.url))
            fill_s = time.perf_counter() - t
            console = subprocess.Popen(
                [str(Path(sys.executable).parent / "naqd"), "dashboard", "--servers",
                 server.url, "--listen", f"127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            wait_until(lambda: get(f"{base}/api/v1/me") == 200, 60, what="console")
            # Until the id index has caught up, a queued job's detail is a budgeted scan.
            t = time.perf_counter()
            front = f"{base}/api/v1/jobs?q={ids['queued_last'][:8]}"
            wait_until(lambda: b'"queued"' in body(front), 300, interval=0.5)
            index_s = time.perf_counter() - t
            print(
                f"\nconsole over HTTP: {N_QUEUED} queued, {N_DEAD} dead letters, {N_RESULTS} "
                f"results (filled in {fill_s:.0f} s, id index ready {index_s:.0f} s later)"
            )
            for name, path in [
                ("GET / (overview page)", "/"),
                ("GET /api/v1/overview", "/api/v1/overview"),
                ("GET /dead-letters (page of 50)", "/dead-letters"),
                ("GET /api/v1/dead-letters?limit=50", "/api/v1/dead-letters?limit=50"),
                ("GET /jobs/<dead id> (page)", f"/jobs/{ids['dead']}"),
                ("GET /api/v1/jobs/<finished id>", f"/api/v1/jobs/{ids['result']}"),
                ("GET /api/v1/jobs/<queued id>", f"/api/v1/jobs/{ids['queued_last']}"),
                ("GET /api/v1/jobs?q=<8-char prefix>", f"/api/v1/jobs?q={ids['dead'][:8]}"),
                ("GET /jobs?q=<exact id> (page)", f"/jobs?q={ids['dead']}"),
            ]:
                median, worst, status = timed(base + path)
                flag = "" if median <= TARGET_MS else "  over target"
                print(f"  {name:<40} {median:>7.1f} ms  (max {worst:.1f}, {status}){flag}")
        finally:
            if console is not None:
                console.terminate()
                console.wait(30)
            server.stop()


if __name__ == "__main__":
    main()
