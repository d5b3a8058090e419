"""Pools (several queues per worker process): the configuration rules, the children a
host runs, what a reload restarts, a pooled process's recycle limits, and the status
figures per queue. Pure logic; the processes themselves are in tests/process."""

from __future__ import annotations

import textwrap

import pytest

from naqd.config import Config, ConfigError, PoolConfig, parse_config
from naqd.observe.status import _per_queue
from naqd.supervisor.policy import plan_slots
from naqd.supervisor.reload import plan_reload
from naqd.worker.recycle import RecycleLimits

BASE = """\
queues:
  default: {}
  reports: {concurrency: 4}
  emails: {}
  heavy: {processes: 2, max_jobs_per_process: 100}
pools:
  small: {queues: [default, reports, emails], processes: 2}
"""


def parse(text: str) -> Config:
    return parse_config(textwrap.dedent(text), "naq.yaml", env={})


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return [str(issue) for issue in info.value.issues]


def test_a_pool_parses_and_leaves_its_queues_their_own_settings() -> None:
    config = parse(BASE)
    assert config.pools == {
        "small": PoolConfig(name="small", queues=("default", "reports", "emails"), processes=2)
    }
    assert config.queues["reports"].concurrency == 4
    assert config.pool_of("reports") is config.pools["small"]
    assert config.pool_of("heavy") is None
    assert [q.name for q in config.served_by("small")] == ["default", "reports", "emails"]
    assert [q.name for q in config.served_by("heavy")] == ["heavy"]


def test_no_pools_is_todays_configuration() -> None:
    assert parse("queues: {a: {processes: 2}}").pools == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "queues: {a: {}}\npools: {p: {queues: [a, b]}}",
            'naq.yaml:2:25: pools.p.queues[1]: unknown queue "b" (configured queues: a)',
        ),
        (
            "queues: {a: {}}\npools: {p: {queues: [a, a]}}",
            'naq.yaml:2:25: pools.p.queues[1]: queue "a" is listed twice',
        ),
        (
            "queues: {a: {}}\npools: {p: {queues: []}}",
            "naq.yaml:2:21: pools.p.queues: a pool needs at least one queue",
        ),
        (
            "queues: {a: {}}\npools: {p: {processes: 2}}",
            'naq.yaml:2:9: pools.p: missing required key "queues"',
        ),
        (
            "queues: {a: {}}\npools: {a: {queues: [a]}}",
            'naq.yaml:2:9: pools.a: a pool cannot have the name of a queue ("a"): '
            "both name worker processes",
        ),
        (
            "queues: {a: {}, b: {}}\npools: {p: {queues: [a]}, q: {queues: [b, a]}}",
            'naq.yaml:2:27: pools.q: queue "a" is already in pool "p": '
            "a queue is served by one pool at most",
        ),
        (
            "queues: {a: {processes: 2}}\npools: {p: {queues: [a]}}",
            'naq.yaml:1:14: queues.a.processes: queue "a" is served by pool "p": set '
            "processes on the pool (pools.p.processes), or take the queue out of the pool "
            "to give it processes of its own",
        ),
        (
            "queues: {a: {max_memory_per_process: 1GiB}}\npools: {p: {queues: [a]}}",
            'naq.yaml:1:14: queues.a.max_memory_per_process: queue "a" is served by pool "p": '
            "set max_memory_per_process on the pool (pools.p.max_memory_per_process), or take "
            "the queue out of the pool to give it processes of its own",
        ),
        (
            "queues: {a: {}}\npools: {p: {queues: [a], processes: 0}}",
            "naq.yaml:2:37: pools.p.processes: expected a positive integer, got 0",
        ),
        (
            "queues: {a: {}}\npools: {p: {queues: [a], concurrency: 2}}",
            "naq.yaml:2:26: pools.p.concurrency: unknown key (valid keys: queues, processes, "
            "max_jobs_per_process, max_jobs_jitter, max_memory_per_process)",
        ),
    ],
)
def test_pool_errors(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_pools_before_queues_in_the_file_still_checks_names() -> None:
    config = parse("pools: {p: {queues: [a]}}\nqueues: {a: {}}")
    assert config.pools["p"].queues == ("a",)


# -- the children a host runs -----------------------------------------------------------


def test_plan_slots_one_child_per_pool_process_then_unpooled_queues() -> None:
    slots = plan_slots(parse(BASE))
    assert [(s.label, s.pool) for s in slots] == [
        ("pool[small]#0", True),
        ("pool[small]#1", True),
        ("worker[heavy]#0", False),
        ("worker[heavy]#1", False),
        ("scheduler", False),
    ]
    assert {s.role for s in slots[:-1]} == {"worker"}


# -- reloads ----------------------------------------------------------------------------


def changed(edit: tuple[str, str]) -> Config:
    return parse(BASE.replace(*edit))


@pytest.mark.parametrize(
    ("edit", "restart", "stop", "start"),
    [
        # One queue's policy changes: every process of its pool is replaced.
        (
            ("reports: {concurrency: 4}", "reports: {concurrency: 8}"),
            {("worker", "small", 0), ("worker", "small", 1)},
            set(),
            [],
        ),
        # The pool's own settings change: the same.
        (
            ("processes: 2}\n", "processes: 2, max_jobs_per_process: 500}\n"),
            {("worker", "small", 0), ("worker", "small", 1)},
            set(),
            [],
        ),
        # A queue outside the pool changes: the pool is left alone.
        (
            ("max_jobs_per_process: 100", "max_jobs_per_process: 200"),
            {("worker", "heavy", 0), ("worker", "heavy", 1)},
            set(),
            [],
        ),
        # More processes: the pool's new process starts, the others stay.
        (("processes: 2}\n", "processes: 3}\n"), set(), set(), ["pool[small]#2"]),
        # A queue leaves the pool for processes of its own: the pool restarts without it.
        (
            ("[default, reports, emails]", "[default, reports]"),
            {("worker", "small", 0), ("worker", "small", 1)},
            set(),
            ["worker[emails]#0"],
        ),
    ],
)
def test_reload_of_a_pool(edit, restart, stop, start) -> None:
    plan = plan_reload(parse(BASE), changed(edit))
    assert plan.restart == restart
    assert plan.stop == stop
    assert [s.label for s in plan.start] == start


def test_reload_a_queue_becoming_a_pool_of_the_same_name_is_a_new_child() -> None:
    old = parse("queues: {a: {}, b: {}}")
    new = parse("queues: {b: {}, c: {}}\npools: {a: {queues: [b, c]}}")
    plan = plan_reload(old, new)
    assert ("worker", "a", 0) in plan.stop
    assert [s.label for s in plan.start] == ["pool[a]#0"]
    assert ("worker", "a", 0) not in plan.restart


def test_reload_putting_queues_into_a_pool() -> None:
    old = parse("queues: {a: {}, b: {}}")
    new = parse("queues: {a: {}, b: {}}\npools: {p: {queues: [a, b]}}")
    plan = plan_reload(old, new)
    assert plan.stop == {("worker", "a", 0), ("worker", "b", 0)}
    assert [s.label for s in plan.start] == ["pool[p]#0"]


# -- recycling --------------------------------------------------------------------------


def test_pool_recycle_limits_count_the_pools_settings() -> None:
    pool = PoolConfig(name="p", queues=("a",), max_jobs_per_process=100, max_memory_per_process=5)
    assert RecycleLimits.for_pool(pool, 0.0) == RecycleLimits(max_jobs=100, max_rss=5)
    assert RecycleLimits.for_pool(pool, 0.999).max_jobs == 110  # 10 % jitter by default
    assert RecycleLimits.for_pool(PoolConfig(name="p"), 0.5) == RecycleLimits()


# -- status figures per queue -----------------------------------------------------------


def test_a_pooled_process_counts_per_queue_in_status() -> None:
    pooled = {"concurrency": 20, "slots": {"a": 4, "b": 16}, "busy": {"a": 1, "b": 3}}
    alone = {"concurrency": 8, "running": ["x", "y"]}
    assert _per_queue(pooled, "slots", "a", "concurrency") == 4
    assert _per_queue(pooled, "busy", "b", "running") == 3
    assert _per_queue(alone, "slots", "a", "concurrency") == 8
    assert _per_queue(alone, "busy", "a", "running") == 2
