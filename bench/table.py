"""The bench's results as Markdown tables (ready for docs/performance.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Fmt = Callable[[float, bool], str]  # (value, with unit)


def per_s(v: float, unit: bool = True) -> str:
    text = f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"
    return text + "/s" if unit else text


def ms(v: float, unit: bool = True) -> str:
    text = f"{v:.2f}" if v < 10 else f"{v:.0f}"
    return text + " ms" if unit else text


def pct(v: float, unit: bool = True) -> str:
    """Cores as percent of one core."""
    return f"{v * 100:.1f}" + ("%" if unit else "")


def cores(v: float) -> str:
    return f"{v:.2f}"


def mb(v: float) -> str:
    return f"{v:.0f} MB"


def share(v: float, unit: bool = True) -> str:
    return f"{v * 100:.0f}" + ("%" if unit else "")


def _row(label: str, s: dict[str, float], fmt: Fmt, ratio: str = "", target: str = "") -> str:
    spread = f"{fmt(s['min'], False)}..{fmt(s['max'], False)}"
    return f"| {label} | {fmt(s['median'], True)} | {spread} | {ratio} | {target} |"


def _of(a: dict[str, float], b: dict[str, float]) -> float:
    return a["median"] / b["median"] if b["median"] else 0.0


def _ratio(a: dict[str, float], b: dict[str, float], of: str) -> str:
    return f"{_of(a, b):.2f} of {of}" if b["median"] else ""


def _target(text: str, met: bool) -> str:
    return f"{text}: {'met' if met else '**missed**'}"


# The targets of issue 21 (round 3), as ratios to the raw loops of the same run:
# one worker process at concurrency 10 with the default config (prefetch on), against
# the raw pull+ack loop (batch 100, each message acked).
FIRE_AND_FORGET = 1.0  # of the raw pull+ack loop
STORED = 0.6  # of the raw pull+ack loop
TWO_PROCESSES = 1.6  # of one process, same jobs
ENQUEUE = 0.9  # of the raw publish
START_LATENCY = 1.1  # enqueue-to-start p50, of the raw publish-to-receipt p50
RSS_GROWTH = 1.05  # a worker's RSS after all the memory run's jobs, of its RSS after warm-up
CRON_P99_MS = 50.0  # 1,000 schedules on one second: start late p99


def _drain_row(label: str, d: dict[str, Any], r: dict[str, Any]) -> str:
    b = r["baseline_per_s"]
    raw_pull, raw_store = b["raw_pull_ack"], b["raw_pull_store_ack"]
    ratio, target = _ratio(d["rate"], raw_pull, "raw pull+ack"), ""
    if label.startswith("1 "):
        if "stored" in label:
            ratio += "; " + _ratio(d["rate"], raw_store, "raw pull+stored+ack")
        if ", c10," in label:
            share = STORED if "stored" in label else FIRE_AND_FORGET
            target = _target(f">= {share} of raw pull+ack", _of(d["rate"], raw_pull) >= share)
    else:
        one = r["drain"].get(label.replace("2 processes", "1 process"))
        if one is not None:
            ratio = f"{_of(d['rate'], one['rate']):.2f} of 1 process; nats-server "
            ratio += f"{cores(d['nats_cpu']['median'])} cores (1 process: "
            ratio += f"{cores(one['nats_cpu']['median'])})"
            target = _target(f">= {TWO_PROCESSES} of 1 process",
                             _of(d["rate"], one["rate"]) >= TWO_PROCESSES)  # fmt: skip
    return _row(f"drain, {label}", d["rate"], per_s, ratio, target)


def print_table(r: dict[str, Any]) -> None:
    runs = r["runs"]
    print(f"\n== naqd benchmark: median (min..max) of {runs} run(s), scale {r['scale']} ==\n")
    print("| figure | median | min..max | ratio | target |")
    print("|---|---|---|---|---|")
    b = r["baseline_per_s"]
    raw_pull = b["raw_pull_ack"]
    print(_row("raw awaited publish", b["raw_awaited_publish"], per_s))
    print(_row("raw pipelined publish", b["raw_pipelined_publish"], per_s))
    print(_row("raw pull+ack loop", raw_pull, per_s, "", "the ceiling of fire-and-forget"))
    raw_store = b["raw_pull_store_ack"]
    print(_row("raw pull+stored result+ack loop", raw_store, per_s, "", "the ceiling of stored"))
    if "enqueue_per_s" in r:
        _enqueue(r["enqueue_per_s"], b)
    for label, d in r.get("drain", {}).items():
        print(_drain_row(label, d, r))
    if "depth" in r:
        _depth(r["depth"], raw_pull)
    raw_latency = b.get("raw_enqueue_to_start_ms")
    if raw_latency is not None:
        for p in ("p50", "p99"):
            print(_row(f"raw publish-to-receipt {p}", raw_latency[p], ms))
    for name, v in r.get("latency", {}).items():
        what = name.removesuffix("_ms").replace("_", "-")
        for p in ("p50", "p99"):
            ratio = target = ""
            if raw_latency is not None and what == "enqueue-to-start":
                ratio = _ratio(v[p], raw_latency[p], "raw")
                if p == "p50":
                    met = _of(v[p], raw_latency[p]) <= START_LATENCY
                    target = _target(f"<= {START_LATENCY} of raw", met)
            print(_row(f"{what} {p}", v[p], ms, ratio, target))
    if "scheduling" in r:
        _scheduling(r["scheduling"])
    memory = r.get("memory_mb", {})
    after = [k for k in memory if k.startswith("worker_after")]
    for name, v in memory.items():
        target = ""
        if len(after) == 2 and name == after[1]:  # flat: the last reading against the warm one
            warm = memory[after[0]]
            met = v <= RSS_GROWTH * warm
            target = _target(f"<= {RSS_GROWTH} of after warm-up ({v / warm:.2f})", met)
        print(f"| RSS {name.replace('_', ' ')} | {mb(v)} | | | {target} |")
    print("\nCPU rows: percent of one core (CPU seconds / wall seconds over the window).")
    print("\nCPU during the drains (cores: CPU seconds / wall seconds, median)\n")
    print("| drain | naqd | nats-server |")
    print("|---|---|---|")
    for label, d in r.get("drain", {}).items():
        print(f"| {label} | {cores(d['naqd_cpu']['median'])} | {cores(d['nats_cpu']['median'])} |")
    if "depth" in r:
        dep = r["depth"]
        for label, d in (("1k queued", dep["shallow"]), ("deep queue, first sample", dep["deep"])):
            print(
                f"| {label} | {cores(d['naqd_cpu']['median'])} | {cores(d['nats_cpu']['median'])} |"
            )


def _enqueue(e: dict[str, Any], b: dict[str, Any]) -> None:
    for label, key, raw, of in (
        ("enqueue, awaited", "awaited", "raw_awaited_publish", "raw awaited"),
        ("enqueue_many", "bulk", "raw_pipelined_publish", "raw pipelined"),
    ):
        met = _of(e[key], b[raw]) >= ENQUEUE
        target = _target(f">= {ENQUEUE} of {of}", met)
        print(_row(label, e[key], per_s, _ratio(e[key], b[raw], of), target))


def _depth(dep: dict[str, Any], raw_pull: dict[str, Any]) -> None:
    shallow = dep["shallow"]["rate"]
    print(
        _row(
            f"drain, {dep['shallow_jobs']:,} queued",
            shallow,
            per_s,
            _ratio(shallow, raw_pull, "raw pull+ack"),
        )
    )
    first = dep["deep"][f"first_{dep['shallow_jobs']}_rate"]
    print(
        _row(
            f"drain, {dep['deep_jobs']:,} queued: first {dep['shallow_jobs']:,}",
            first,
            per_s,
            _ratio(first, shallow, "shallow"),
        )
    )
    print(
        _row(
            f"drain, {dep['deep_jobs']:,} queued: first {dep['deep_sample_jobs']:,}",
            dep["deep"]["rate"],
            per_s,
            _ratio(dep["deep"]["rate"], shallow, "shallow"),
        )
    )


def _scheduling(s: dict[str, Any]) -> None:
    pending, n = f"{s['pending_delayed']:,}", f"{s['schedules']:,}"
    idle = s["idle_with_delayed"]
    where = f"idle, {pending} delayed pending"
    print(_row(f"CPU {where}: naqd", idle["naqd_cpu_cores"], pct))
    print(_row(f"CPU {where}: naqd workers", idle["naqd_workers_cpu_cores"], pct))
    print(_row(f"CPU {where}: nats-server", idle["nats_cpu_cores"], pct))
    late = idle["delayed_late_ms"]
    batch = f"{s['delayed_batch']:,} delayed due at once"
    print(_row(f"{batch}: first start late", late["min"], ms))
    print(_row(f"{batch}: p50 start late", late["p50"], ms))
    print(_row(f"{batch}: p99 start late", late["p99"], ms))
    idle = s["idle_with_schedules"]
    where = f"idle, {n} cron schedules (+ delayed)"
    print(_row(f"CPU {where}: naqd", idle["naqd_cpu_cores"], pct))
    print(_row(f"CPU {where}: naqd scheduler", idle["naqd_scheduler_cpu_cores"], pct))
    print(_row(f"CPU {where}: nats-server", idle["nats_cpu_cores"], pct))
    c = s["cron_every_second"]
    cron = f"{n} schedules every second"
    print(_row(f"{cron}: fire late p50", c["cron_fire_late_ms"]["p50"], ms))
    print(_row(f"{cron}: fire late p99", c["cron_fire_late_ms"]["p99"], ms))
    print(_row(f"{cron}: start late p50", c["cron_start_late_ms"]["p50"], ms))
    p99 = c["cron_start_late_ms"]["p99"]
    target = _target(f"<= {CRON_P99_MS:.0f} ms", p99["median"] <= CRON_P99_MS)
    print(_row(f"{cron}: start late p99", p99, ms, "", target))
    print(_row(f"{cron}: ticks fired", c["cron_fired"], share))
    print(_row(f"{cron}: CPU naqd scheduler", c["naqd_scheduler_cpu_cores"], pct))
    print(_row(f"{cron}: CPU naqd", c["naqd_cpu_cores"], pct))
    print(_row(f"{cron}: CPU nats-server", c["nats_cpu_cores"], pct))
