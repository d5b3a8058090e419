"""`naqd worker` flags to configuration (naqd/config/flags.py): defaults, precedence,
overriding a file, errors that name the flag, and the printed YAML reading back."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from naqd.config import Config, ConfigError, parse_config
from naqd.config.flags import FLAGS_PATH, WorkerFlags, worker_config

FILE = textwrap.dedent(
    """\
    nats:
      servers: ${NATS_URLS:-nats://file:4222}
    tasks: {imports: [tests.tasks]}
    queues:
      high: &base {concurrency: 2, retries: 1}
      low: {<<: *base, concurrency: 3}
    schedules:
      nightly: {task: "tests.tasks:add", every: 1h, queue: low}
    scheduler: {leader_election: {lease: 20s}}
    """
)


POOLED = textwrap.dedent(
    """\
    queues:
      a: {}
      b: {}
      solo: {processes: 2}
    pools:
      small: {queues: [a, b], processes: 2}
    """
)


def build(flags: WorkerFlags, env: dict[str, str] | None = None, text: str | None = None) -> Config:
    return worker_config(flags, env or {}, text, "naq.yaml" if text else None).config


def summary(config: Config) -> dict[str, object]:
    return {
        "queues": {q.name: (q.processes, q.concurrency, q.retries) for q in config.queues.values()},
        "servers": config.nats.servers,
        "imports": config.tasks.imports,
        "scheduler": config.scheduler.enabled,
        "schedules": sorted(config.schedules),
        "pools": {p.name: (p.queues, p.processes) for p in config.pools.values()},
    }


CASES = [
    pytest.param(
        WorkerFlags(),
        {},
        None,
        {
            "queues": {"default": (1, 16, 3)},
            "servers": (),  # embedded server
            "imports": (),
            "scheduler": False,
            "schedules": [],
            "pools": {},
        },
        id="defaults",
    ),
    pytest.param(
        WorkerFlags(("default",), ("examples.tasks",), concurrency="4", servers="nats://a:4222"),
        {},
        None,
        {
            "queues": {"default": (1, 4, 3)},
            "servers": ("nats://a:4222",),
            "imports": ("examples.tasks",),
            "scheduler": False,
            "schedules": [],
            "pools": {},
        },
        id="issue example",
    ),
    pytest.param(
        WorkerFlags(("high", "low", "high"), processes="2", scheduler=True),
        {"NAQD_SERVERS": "nats://e1:4222, nats://e2:4222"},
        None,
        {
            "queues": {"high": (1, 16, 3), "low": (1, 16, 3)},
            "servers": ("nats://e1:4222", "nats://e2:4222"),
            "imports": (),
            "scheduler": True,
            "schedules": [],
            "pools": {"cli": (("high", "low"), 2)},
        },
        id="several queues: one pool of them, servers from the environment",
    ),
    pytest.param(
        WorkerFlags(servers="nats://flag:4222"),
        {"NAQD_SERVERS": "nats://env:4222"},
        None,
        {
            "queues": {"default": (1, 16, 3)},
            "servers": ("nats://flag:4222",),
            "imports": (),
            "scheduler": False,
            "schedules": [],
            "pools": {},
        },
        id="--servers beats the environment",
    ),
    pytest.param(
        WorkerFlags(),
        {},
        FILE,
        {
            "queues": {"high": (1, 2, 1), "low": (1, 3, 1)},
            "servers": ("nats://file:4222",),
            "imports": ("tests.tasks",),
            "scheduler": False,  # the file does not turn it on
            "schedules": [],  # nothing would fire them
            "pools": {},
        },
        id="file alone: its queues, scheduler off",
    ),
    pytest.param(
        WorkerFlags(("low", "extra"), ("examples.tasks", "tests.tasks"), "8"),
        {"NAQD_SERVERS": "nats://env:4222"},
        FILE,
        {
            "queues": {"low": (1, 8, 1), "extra": (1, 8, 3)},
            "servers": ("nats://env:4222",),
            "imports": ("tests.tasks", "examples.tasks"),
            "scheduler": False,
            "schedules": [],
            "pools": {"cli": (("low", "extra"), 1)},
        },
        id="file overridden for the queues named, others not served",
    ),
    pytest.param(
        WorkerFlags(concurrency="5", scheduler=True),
        {"NATS_URLS": "nats://interp:4222"},
        FILE,
        {
            "queues": {"high": (1, 5, 1), "low": (1, 5, 1)},
            "servers": ("nats://interp:4222",),
            "imports": ("tests.tasks",),
            "scheduler": True,
            "schedules": ["nightly"],
            "pools": {},
        },
        id="file with --scheduler keeps its schedules",
    ),
    pytest.param(
        WorkerFlags(processes="3"),
        {},
        POOLED,
        {
            "queues": {"a": (1, 16, 3), "b": (1, 16, 3), "solo": (3, 16, 3)},
            "servers": (),
            "imports": (),
            "scheduler": False,
            "schedules": [],
            "pools": {"small": (("a", "b"), 3)},
        },
        id="file's pools kept, --processes for each pool and each queue in none",
    ),
    pytest.param(
        WorkerFlags(("a",), processes="2"),
        {},
        POOLED,
        {
            "queues": {"a": (2, 16, 3)},
            "servers": (),
            "imports": (),
            "scheduler": False,
            "schedules": [],
            "pools": {},
        },
        id="one queue named runs alone, out of the file's pool",
    ),
    pytest.param(
        WorkerFlags(("solo", "a"), processes="2"),
        {},
        POOLED,
        {
            "queues": {"solo": (1, 16, 3), "a": (1, 16, 3)},
            "servers": (),
            "imports": (),
            "scheduler": False,
            "schedules": [],
            "pools": {"cli": (("solo", "a"), 2)},
        },
        id="a queue's own processes give way to the command line's pool",
    ),
]


@pytest.mark.parametrize(("flags", "env", "text", "expected"), CASES)
def test_flags_build_the_config(flags, env, text, expected) -> None:
    assert summary(build(flags, env, text)) == expected


@pytest.mark.parametrize(("flags", "env", "text", "expected"), CASES)
def test_printed_yaml_reads_back_as_the_same_config(flags, env, text, expected) -> None:
    built = worker_config(flags, env, text, "naq.yaml" if text else None)
    again = parse_config(built.to_yaml(), "printed.yaml", env)
    assert again == dataclasses.replace(built.config, path="printed.yaml")


def test_flag_values_are_not_interpolated() -> None:
    url = "nats://user:pa$word@h:4222"
    built = worker_config(WorkerFlags(servers=url), {"word": "X"})
    assert built.config.nats.servers == (url,)
    assert "pa$$word" in built.to_yaml()  # `$$` is the file's way to write `$`
    assert parse_config(built.to_yaml(), "p.yaml", {"word": "X"}).nats.servers == (url,)


def test_the_printed_file_keeps_its_references_and_drops_unserved_queues() -> None:
    built = worker_config(WorkerFlags(("low",), concurrency="9"), {}, FILE, "naq.yaml")
    printed = built.to_yaml()
    assert "${NATS_URLS:-nats://file:4222}" in printed  # not expanded into the output
    assert "lease: 20s" in printed
    assert "high" not in printed.split("queues:")[1].split("scheduler:")[0]


def test_without_a_file_the_path_names_the_command() -> None:
    assert build(WorkerFlags()).path == FLAGS_PATH


W = "naqd worker: "
ERRORS = [
    (WorkerFlags(concurrency="0"), None, [W + "--concurrency: expected a positive integer, got 0"]),
    (
        WorkerFlags(concurrency="four"),
        None,
        [W + '--concurrency: expected a positive integer, got "four"'],
    ),
    (WorkerFlags(processes="1.5"), None, [W + "--processes: expected a positive integer, got 1.5"]),
    (
        WorkerFlags(servers="http://x:80"),
        None,
        [W + '--servers: expected a server URL like nats://10.0.0.1:4222, got "http://x:80"'],
    ),
    (
        WorkerFlags(imports=("my-tasks",)),
        None,
        [W + '--import: expected a dotted module name like examples.tasks, got "my-tasks"'],
    ),
    (
        WorkerFlags(("a.b",)),
        None,
        [
            W + 'QUEUE "a.b": invalid queue name: use only letters, digits, "_" and "-" '
            "(names become NATS subject tokens)"
        ],
    ),
    # A file is checked as `naqd check` checks it, positions and all.
    (
        WorkerFlags(("high", "low"), concurrency="0"),
        FILE.replace("retries: 1", "retries: -1"),
        [
            "naq.yaml:5:41: queues.high.retries: expected an integer of 0 or more, got -1",
            "naq.yaml:5:41: queues.low.retries: expected an integer of 0 or more, got -1",
        ],
    ),
    # One message for a flag that applies to several queues.
    (
        WorkerFlags(("high", "low"), concurrency="0"),
        FILE,
        [W + "--concurrency: expected a positive integer, got 0"],
    ),
    # A schedule needs its queue among the ones served, as in a file.
    (
        WorkerFlags(("high",), scheduler=True),
        FILE,
        ['naq.yaml:8:56: schedules.nightly.queue: unknown queue "low" (configured queues: high)'],
    ),
]


@pytest.mark.parametrize(("flags", "text", "expected"), ERRORS)
def test_errors_name_the_flag_or_the_file_position(flags, text, expected) -> None:
    with pytest.raises(ConfigError) as caught:
        build(flags, {"NAQD_SERVERS": "nats://env:4222"}, text)
    assert [str(issue) for issue in caught.value.issues] == expected


def test_the_environment_servers_are_named_when_wrong() -> None:
    with pytest.raises(ConfigError) as caught:
        build(WorkerFlags(), {"NAQD_SERVERS": "nats://ok:4222,bad url"})
    assert str(caught.value).startswith("naqd worker: $NAQD_SERVERS: expected a server URL")


# -- naqd run --config: $NAQD_SERVERS over the file, as naqd worker ---------------------


def test_naqd_run_takes_the_servers_from_the_environment(tmp_path) -> None:
    from naqd.config.flags import run_config

    path = tmp_path / "naq.yaml"
    path.write_text("nats: {servers: [nats://file:4222]}\nqueues: {emails: {}}\n")
    assert run_config(str(path), {}).nats.urls == ["nats://file:4222"]
    config = run_config(str(path), {"NAQD_SERVERS": "nats://e1:4222,nats://e2:4222"})
    assert config.nats.urls == ["nats://e1:4222", "nats://e2:4222"]
    assert list(config.queues) == ["emails"] and config.path == str(path)


def test_naqd_run_blames_the_variable_for_a_bad_url(tmp_path) -> None:
    from naqd.config.flags import run_config

    path = tmp_path / "naq.yaml"
    path.write_text("queues: {default: {}}\n")
    with pytest.raises(ConfigError) as caught:
        run_config(str(path), {"NAQD_SERVERS": "bad url"})
    assert str(caught.value).startswith("naqd run: $NAQD_SERVERS: expected a server URL")
