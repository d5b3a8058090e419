"""Durable (`sync_interval: always`) against non-durable (nats-server's default, an fsync
every 2 minutes), side by side in one run, beside the disk's own fsync time.

Also answers two questions with measurements rather than reading: how many fsyncs the
server makes for an atomic batch (counted with strace on the server process, when
strace is installed), and what an ack costs under `always` (the raw pull+ack loop).

    python -m bench.durable            # BENCH_SCALE / BENCH_RUNS as for `make bench`
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from nats.js.api import RetentionPolicy, StreamConfig

from bench import raw
from bench.drain import drain
from bench.fill import ensure_queue
from naqd import Client
from tests.natsserver import NatsServer

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
N_AWAITED = max(100, int(1000 * SCALE))
N_BULK = max(1000, int(10_000 * SCALE))
N_DRAIN = max(2000, int(20_000 * SCALE))
N_RAW = max(2000, int(10_000 * SCALE))
BATCH = 100  # messages per atomic batch (the server allows up to 1000)
DRAIN_CAP = 6.0
ASYNC = "bench.tasks:anoop"

MODES = {
    "non-durable (sync 2m)": "",
    "durable (sync always)": "jetstream { sync_interval: always }\n",
}

# Targets of the durability issue, for the durable column (2-core machine).
TARGET_PIPELINED = 15_000.0
TARGET_DRAIN = 8_000.0


def fsync_ms(directory: Path, n: int = 200) -> float:
    """Median time of a small append plus fsync in `directory`: the disk's floor."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    samples = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 256)
            os.fsync(fd)
            samples.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(samples)


async def awaited(url: str, n: int) -> dict[str, float]:
    lat = []
    async with Client(url) as client:
        await client.declare_queue("denq")  # no daemon serves it: a real app's queue is known
        t0 = time.perf_counter()
        for _ in range(n):
            t1 = time.perf_counter()
            await client.enqueue(ASYNC, queue="denq")
            lat.append((time.perf_counter() - t1) * 1000)
        rate = n / (time.perf_counter() - t0)
    await raw_purge(url)
    return {"rate": rate, "p50_ms": statistics.median(lat)}


async def pipelined(url: str, n: int) -> float:
    async with Client(url) as client:
        await client.declare_queue("denq")  # no daemon serves it: a real app's queue is known
        t0 = time.perf_counter()
        await client.enqueue_many(ASYNC, [()] * n, queue="denq")
        rate = n / (time.perf_counter() - t0)
    await raw_purge(url)
    return rate


async def setup(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await ensure_queue(nc, url, "denq")
    finally:
        await nc.close()


async def raw_purge(url: str) -> None:
    from naqd.protocol.names import JOBS_STREAM

    nc = await nats.connect(url)
    try:
        await nc.jetstream().purge_stream(JOBS_STREAM)
    finally:
        await nc.close()


async def atomic_batches(url: str, n: int, batch: int = BATCH) -> float:
    """`n` messages as atomic batches of `batch` (ADR-50 headers): only the commit
    message asks for a reply, and the next batch starts once it came."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    name = "RAWBATCH"
    try:
        await js.add_stream(
            StreamConfig(
                name=name,
                subjects=[f"{name}.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                allow_atomic=True,
            )
        )
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            bid = uuid.uuid4().hex
            size = min(batch, n - start)
            for i in range(1, size):
                hdr = {"Nats-Batch-Id": bid, "Nats-Batch-Sequence": str(i)}
                await nc.publish(f"{name}.x", raw.PAYLOAD, headers=hdr)
            hdr = {"Nats-Batch-Id": bid, "Nats-Batch-Sequence": str(size), "Nats-Batch-Commit": "1"}
            reply = await nc.request(f"{name}.x", raw.PAYLOAD, timeout=10, headers=hdr)
            if b"error" in reply.data:
                raise RuntimeError(reply.data.decode())
        rate = n / (time.perf_counter() - t0)
        return rate
    finally:
        await js.delete_stream(name)
        await nc.close()


async def pipelined_raw(url: str, n: int) -> float:
    return await raw.pipelined_publish(url, n)


def count_fsyncs(pid: int, work: Any) -> int | None:
    """fsync/fdatasync calls the process makes while `work()` runs (strace -c), or None
    without strace."""
    if shutil.which("strace") is None:
        return None
    with tempfile.NamedTemporaryFile(prefix="strace-", suffix=".txt") as out:
        tracer = subprocess.Popen(
            ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", out.name, "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # strace attaches to every thread of the Go process
        try:
            work()
        finally:
            tracer.terminate()
            tracer.wait(10)
        total = 0
        for line in Path(out.name).read_text().splitlines():
            parts = line.split()
            if parts and parts[-1] in ("fsync", "fdatasync"):
                total += int(parts[3])  # % time, seconds, usecs/call, calls
        return total


def median_of(fn: Any) -> float:
    return statistics.median(fn() for _ in range(RUNS))


def measure_one(url: str, pid: int, tmp: Path) -> dict[str, Any]:
    row: dict[str, Any] = {}
    asyncio.run(setup(url))
    aw = [asyncio.run(awaited(url, N_AWAITED)) for _ in range(RUNS)]
    row["awaited_per_s"] = statistics.median(a["rate"] for a in aw)
    row["awaited_p50_ms"] = statistics.median(a["p50_ms"] for a in aw)
    row["pipelined_per_s"] = median_of(lambda: asyncio.run(pipelined(url, N_BULK)))
    row["raw_pipelined_per_s"] = median_of(lambda: asyncio.run(pipelined_raw(url, N_RAW)))
    row["raw_atomic_batches_per_s"] = median_of(lambda: asyncio.run(atomic_batches(url, N_RAW)))
    fsyncs = count_fsyncs(pid, lambda: asyncio.run(atomic_batches(url, 1000)))
    row["fsyncs_per_atomic_batch_of_100"] = None if fsyncs is None else fsyncs / 10
    fsyncs = count_fsyncs(pid, lambda: asyncio.run(pipelined_raw(url, 1000)))
    row["fsyncs_per_100_pipelined"] = None if fsyncs is None else fsyncs / 10
    row["raw_pull_ack_per_s"] = median_of(lambda: asyncio.run(raw.pull_ack_loop(url, N_RAW)))
    row["drain_c256_stored_per_s"] = median_of(
        lambda: asyncio.run(drain(url, tmp, 1, N_DRAIN, ASYNC, None, DRAIN_CAP, 256)).rate
    )
    return row


def measure(tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"fsync_ms": fsync_ms(tmp)}
    for label, conf in MODES.items():
        server = NatsServer(tmp / label.split()[0], config=conf or None).start()
        try:
            assert server.proc is not None
            out[label] = measure_one(server.url, server.proc.pid, tmp)
            print(f"{label}: {out[label]}", flush=True)
        finally:
            server.stop()
    return out


def table(r: dict[str, Any]) -> str:
    lazy, durable = r["non-durable (sync 2m)"], r["durable (sync always)"]
    fs = r["fsync_ms"]

    def rate(v: float) -> str:
        return f"{v / 1000:.1f}k/s" if v >= 1000 else f"{v:.0f}/s"

    def met(ok: bool) -> str:
        return "met" if ok else "**missed**"

    extra = durable["awaited_p50_ms"] - lazy["awaited_p50_ms"]
    rows = [
        "| figure | non-durable | durable | target (durable) |",
        "|---|---|---|---|",
        f"| disk: 256 B append + fsync, p50 | {fs:.2f} ms | {fs:.2f} ms | |",
        f"| awaited enqueue, p50 latency | {lazy['awaited_p50_ms']:.2f} ms | "
        f"{durable['awaited_p50_ms']:.2f} ms | <= +1 fsync ({fs:.2f} ms): "
        f"+{extra:.2f} ms, {met(extra <= fs)} |",
        f"| awaited enqueue | {rate(lazy['awaited_per_s'])} | {rate(durable['awaited_per_s'])} | |",
        f"| pipelined enqueue (enqueue_many) | {rate(lazy['pipelined_per_s'])} | "
        f"{rate(durable['pipelined_per_s'])} | >= 15k/s: "
        f"{met(durable['pipelined_per_s'] >= TARGET_PIPELINED)} |",
        f"| raw pipelined publish | {rate(lazy['raw_pipelined_per_s'])} | "
        f"{rate(durable['raw_pipelined_per_s'])} | |",
        f"| raw atomic batches of {BATCH} | {rate(lazy['raw_atomic_batches_per_s'])} | "
        f"{rate(durable['raw_atomic_batches_per_s'])} | |",
        f"| fsyncs per {BATCH} messages, atomic batch | "
        f"{lazy['fsyncs_per_atomic_batch_of_100']} | "
        f"{durable['fsyncs_per_atomic_batch_of_100']} | |",
        f"| fsyncs per {BATCH} messages, pipelined | {lazy['fsyncs_per_100_pipelined']} | "
        f"{durable['fsyncs_per_100_pipelined']} | |",
        f"| raw pull + ack | {rate(lazy['raw_pull_ack_per_s'])} | "
        f"{rate(durable['raw_pull_ack_per_s'])} | |",
        f"| drain, results stored, c256 | {rate(lazy['drain_c256_stored_per_s'])} | "
        f"{rate(durable['drain_c256_stored_per_s'])} | >= 8k/s: "
        f"{met(durable['drain_c256_stored_per_s'] >= TARGET_DRAIN)} |",
    ]
    return "\n".join(rows)


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="naqd-durable-", dir=os.environ.get("BENCH_DIR")) as d:
        results = measure(Path(d))
    print("\n### Durable vs non-durable (same run)\n")
    print(table(results))
    return results


if __name__ == "__main__":
    main()
