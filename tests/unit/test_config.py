# ruff: noqa: E501 - tables of exact error lines read best unwrapped
from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from naqd.config import (
    Config,
    ConfigError,
    ConfigIssue,
    EmbeddedNatsConfig,
    NatsConfig,
    QueueConfig,
    ScheduleConfig,
    load_config,
    parse_config,
)
from naqd.config.interpolate import InterpolationError, interpolate
from naqd.models import (
    HeartbeatConfig,
    LeaderElectionConfig,
    LoggingConfig,
    MetricsConfig,
    ResultsConfig,
    SchedulerConfig,
    ShutdownConfig,
    TasksConfig,
)

EXAMPLE = """\
nats:
  servers: [nats://10.0.0.1:4222]
  embedded: {listen: 127.0.0.1:4222, store_dir: ./var/nats}
  replicas: 1
tasks:
  imports: [examples.tasks]
  serializer: json
queues:
  default: {concurrency: 16, processes: 2, timeout: 5m, retries: 3, ack_wait: 30s}
schedules:
  nightly-report:
    cron: "0 3 * * *"
    timezone: Europe/Berlin
    task: "examples.tasks:nightly_report"
    queue: default
    args: []
    kwargs: {}
    enabled: true
  ping: {every: 30s, task: "examples.tasks:ping"}
scheduler: {enabled: true, leader_election: {lease: 15s, renew_every: 5s}}
heartbeat: {interval: 5s}
results: {ttl: 7d}
metrics: {listen: 127.0.0.1:9464}
shutdown: {grace_period: 30s}
logging: {level: INFO, format: text}
"""


def parse(text: str, **env: str) -> Config:
    return parse_config(textwrap.dedent(text), "naq.yaml", env=env)


def errors(text: str, **env: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, **env)
    return [str(issue) for issue in info.value.issues]


# --- valid configs ------------------------------------------------------------------


def test_example_parses_to_expected_dataclasses() -> None:
    assert parse_config(EXAMPLE, "naq.yaml", env={}) == Config(
        path="naq.yaml",
        nats=NatsConfig(
            servers=("nats://10.0.0.1:4222",),
            embedded=EmbeddedNatsConfig(listen="127.0.0.1:4222", store_dir="./var/nats"),
            replicas=1,
        ),
        tasks=TasksConfig(imports=("examples.tasks",), serializer="json"),
        queues={
            "default": QueueConfig(
                "default", concurrency=16, processes=2, timeout=300.0, retries=3, ack_wait=30.0
            )
        },
        schedules={
            "nightly-report": ScheduleConfig(
                name="nightly-report",
                task="examples.tasks:nightly_report",
                cron="0 3 * * *",
                timezone="Europe/Berlin",
                queue="default",
            ),
            "ping": ScheduleConfig(name="ping", task="examples.tasks:ping", every=30.0),
        },
        scheduler=SchedulerConfig(True, LeaderElectionConfig(lease=15.0, renew_every=5.0)),
        heartbeat=HeartbeatConfig(5.0),
        results=ResultsConfig(7 * 86400.0),
        metrics=MetricsConfig("127.0.0.1:9464"),
        shutdown=ShutdownConfig(30.0),
        logging=LoggingConfig("INFO", "text"),
    )


@pytest.mark.parametrize("text", ["", "{}", "# only a comment\n", "~\n", "nats:\nqueues:\n"])
def test_empty_config_is_all_defaults(text: str) -> None:
    assert parse(text) == Config(path="naq.yaml")


@pytest.mark.parametrize(
    ("text", "attribute", "expected"),
    [
        ("logging: {level: debug}", "logging.level", "DEBUG"),
        ("nats: {servers: 'nats://a:4222, nats://b:4222'}", "nats.servers", ("nats://a:4222", "nats://b:4222")),
        ("nats: {servers: [demo.nats.io:4222]}", "nats.servers", ("demo.nats.io:4222",)),
        ("metrics: {listen: '[::1]:9464'}", "metrics.listen", "[::1]:9464"),
        ("scheduler: {enabled: no}", "scheduler.enabled", False),
        ("shutdown: {grace_period: 0}", "shutdown.grace_period", 0.0),
        ("queues: {default: {timeout: 90}}", "queues", {"default": QueueConfig("default", timeout=90.0)}),
        ("queues: {high: , low: }", "queues", {"high": QueueConfig("high"), "low": QueueConfig("low")}),
        ("schedules: {s: {cron: '@hourly', task: 'a:b'}}", "schedules.s.cron", "@hourly"),
        ("schedules: {s: {cron: '*/5  * * * *', task: 'a:b'}}", "schedules.s.cron", "*/5 * * * *"),
        ("schedules: {s: {every: 1m, task: 'a.b:C.run', args: [1, x, [2]]}}", "schedules.s.args", (1, "x", [2])),
        ("schedules: {s: {every: 1m, task: 'a:b', kwargs: {n: 1, d: {k: v}}}}", "schedules.s.kwargs", {"n": 1, "d": {"k": "v"}}),
        ("schedules: {s: {cron: '*/10 * * * * *', task: 'a:b'}}", "schedules.s.cron", "*/10 * * * * *"),
        ("schedules: {s: {every: 1m, task: 'a:b'}}", "schedules.s.missed", "run_once"),
        ("schedules: {s: {every: 1m, task: 'a:b', missed: skip, jitter: 30s}}", "schedules.s.jitter", 30.0),
        ("schedules: {s: {every: 1m, task: 'a:b', retries: 0, timeout: 2m}}", "schedules.s.timeout", 120.0),
        ("scheduler: {leader_election: {lease: 2s, renew_every: 1s}}", "scheduler.leader_election.renew_every", 1.0),
        ("", "nats.embedded.sync", "always"),
        ("nats: {embedded: {sync: always}}", "nats.embedded.sync", "always"),
        ("nats: {embedded: {sync: 200ms}}", "nats.embedded.sync", 0.2),
        ("nats: {embedded: {sync: 2m}}", "nats.embedded.sync", 120.0),
        ("nats: {monitoring: 'http://a:8222, https://b:8222/'}", "nats.monitoring", ("http://a:8222", "https://b:8222")),
    ],
)  # fmt: skip
def test_valid_values(text: str, attribute: str, expected: object) -> None:
    value: object = parse(text)
    for part in attribute.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    assert value == expected


def test_merge_keys_explicit_wins() -> None:
    config = parse(
        """\
        queues:
          high: &base {concurrency: 32, timeout: 1m}
          low:
            <<: *base
            concurrency: 2
        """
    )
    assert config.queues["low"] == QueueConfig("low", concurrency=2, timeout=60.0)


def test_load_config_reads_file(tmp_path: Path) -> None:
    path = tmp_path / "naq.yaml"
    path.write_text(EXAMPLE)
    config = load_config(path, env={})
    assert config.path == str(path)
    assert config.queues["default"].processes == 2


# --- errors: one per case, with exact position and path -----------------------------

CASES = [
    # scalars
    ("queues:\n  default:\n    concurrency: many\n", 'naq.yaml:3:18: queues.default.concurrency: expected a positive integer, got "many"'),
    ("queues: {default: {concurrency: 0}}", "naq.yaml:1:33: queues.default.concurrency: expected a positive integer, got 0"),
    ("queues: {default: {concurrency: 2.5}}", "naq.yaml:1:33: queues.default.concurrency: expected a positive integer, got 2.5"),
    ("queues: {default: {processes: true}}", "naq.yaml:1:31: queues.default.processes: expected a positive integer, got true"),
    ("queues: {default: {retries: -1}}", "naq.yaml:1:29: queues.default.retries: expected an integer of 0 or more, got -1"),
    ("queues: {default: {timeout: 0s}}", 'naq.yaml:1:29: queues.default.timeout: expected a duration greater than 0, got "0s"'),
    ("queues: {default: {timeout: soon}}", 'naq.yaml:1:29: queues.default.timeout: expected a duration like 30s, 5m, 2h, got "soon"'),
    ("queues: {default: {timeout: -5m}}", 'naq.yaml:1:29: queues.default.timeout: a duration cannot be negative, got "-5m"'),
    ("queues: {default: {ack_wait: 500ms}}", 'naq.yaml:1:30: queues.default.ack_wait: expected a duration of at least 1s, got "500ms"'),
    ("queues: {default: {timeout: [1]}}", "naq.yaml:1:29: queues.default.timeout: expected a duration like 30s, 5m, 2h, got a list"),
    ("queues: {default: {concurrency: }}", "naq.yaml:1:32: queues.default.concurrency: expected a positive integer, got an empty value"),
    ("nats: {replicas: 6}", "naq.yaml:1:18: nats.replicas: expected an integer from 1 to 5, got 6"),
    ("nats: {embedded: {listen: localhost}}", 'naq.yaml:1:27: nats.embedded.listen: expected host:port like 127.0.0.1:4222, got "localhost"'),
    ("nats: {embedded: {listen: 4222}}", "naq.yaml:1:27: nats.embedded.listen: expected host:port like 127.0.0.1:4222, got 4222"),
    ("metrics: {listen: 'h:70000'}", 'naq.yaml:1:19: metrics.listen: expected a port from 1 to 65535, got "h:70000"'),
    ("tasks: {serializer: xml}", 'naq.yaml:1:21: tasks.serializer: expected one of json, pickle, got "xml"'),
    ("logging: {format: yaml}", 'naq.yaml:1:19: logging.format: expected one of text, json, got "yaml"'),
    ("logging: {level: loud}", 'naq.yaml:1:18: logging.level: expected one of TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL, got "loud"'),
    ("scheduler: {enabled: sometimes}", 'naq.yaml:1:22: scheduler.enabled: expected true or false, got "sometimes"'),
    # lists
    ("nats: {servers: 5}", "naq.yaml:1:17: nats.servers: expected a list of strings, got 5"),
    ("nats:\n  servers:\n    - nats://a:4222\n    - http://b:80\n", 'naq.yaml:4:7: nats.servers[1]: expected a server URL like nats://10.0.0.1:4222, got "http://b:80"'),
    ("tasks: {imports: examples.tasks}", 'naq.yaml:1:18: tasks.imports: expected a list of strings, got "examples.tasks"'),
    ("tasks: {imports: [ok, 'bad/mod']}", 'naq.yaml:1:23: tasks.imports[1]: expected a dotted module name like examples.tasks, got "bad/mod"'),
    ("tasks: {imports: [{a: 1}]}", "naq.yaml:1:19: tasks.imports[0]: expected a dotted module name like examples.tasks, got a mapping"),
    # structure
    ("nats: 5", "naq.yaml:1:7: nats: expected a mapping, got 5"),
    ("nats: [a]", "naq.yaml:1:7: nats: expected a mapping, got a list"),
    ("- 1", "naq.yaml:1:1: expected a mapping of sections at the top level, got a list"),
    ("queues: [default]", "naq.yaml:1:9: queues: expected a mapping of queue names, got a list"),
    ("queues: {}", "naq.yaml:1:9: queues: at least one queue is required"),
    ("queues:\n  my.queue: {}\n", 'naq.yaml:2:3: queues.my.queue: invalid queue name: use only letters, digits, "_" and "-" (names become NATS subject tokens)'),
    ("schedules:\n  'a b': {every: 1m, task: 'a:b'}\n", 'naq.yaml:2:3: schedules.a b: invalid schedule name: use only letters, digits, "_" and "-" (names become NATS subject tokens)'),
    ("? [a]\n: 1\n", "naq.yaml:1:3: expected a plain string key, got a list"),
    # unknown / duplicate keys
    ("queues:\n  default:\n    concurency: 3\n", 'naq.yaml:3:5: queues.default.concurency: unknown key (did you mean "concurrency"?)'),
    ("loging: {}", 'naq.yaml:1:1: loging: unknown key (did you mean "logging"?)'),
    ("heartbeat: {zzz: 1}", "naq.yaml:1:13: heartbeat.zzz: unknown key (valid keys: interval)"),
    ("results: {ttl: 1d}\nresults: {ttl: 2d}\n", "naq.yaml:2:1: results: duplicate key (first defined on line 1)"),
    ("queues:\n  default:\n    retries: 1\n    retries: 2\n", "naq.yaml:4:5: queues.default.retries: duplicate key (first defined on line 3)"),
    # schedules
    ("schedules:\n  s: {cron: '0 3 * * *', every: 1m, task: 'a:b'}\n", "naq.yaml:2:26: schedules.s.every: set either cron or every, not both"),
    ("schedules:\n  s: {task: 'a:b'}\n", 'naq.yaml:2:3: schedules.s: missing a trigger: set cron (like "0 3 * * *") or every (like 30s)'),
    ("schedules:\n  s: {every: 1m}\n", 'naq.yaml:2:3: schedules.s: missing required key "task"'),
    ("schedules:\n  s: {every: 1m, task: run_it}\n", 'naq.yaml:2:24: schedules.s.task: expected a task like "package.module:function", got "run_it"'),
    ("schedules:\n  s: {every: 1m, task: 'a:b', queue: fast}\n", 'naq.yaml:2:38: schedules.s.queue: unknown queue "fast" (configured queues: default)'),
    ("queues: {fast: }\nschedules:\n  s: {every: 1m, task: 'a:b'}\n", 'naq.yaml:3:3: schedules.s: no "default" queue is configured; set queue to one of: fast'),
    ("schedules:\n  s: {cron: '0 3 * *', task: 'a:b'}\n", 'naq.yaml:2:13: schedules.s.cron: expected a cron expression with 5 or 6 fields, got "0 3 * *"'),
    ("schedules:\n  s: {cron: '61 * * * *', task: 'a:b'}\n", 'naq.yaml:2:13: schedules.s.cron: invalid cron expression "61 * * * *"'),
    ("schedules:\n  s: {cron: '0 3 * * *', task: 'a:b', timezone: Europe/Berln}\n", 'naq.yaml:2:49: schedules.s.timezone: unknown timezone "Europe/Berln" (did you mean "Europe/Berlin"?)'),
    ("schedules:\n  s: {every: 500ms, task: 'a:b'}\n", 'naq.yaml:2:14: schedules.s.every: expected a duration of at least 1s, got "500ms"'),
    ("schedules:\n  s: {every: 1m, task: 'a:b', args: 5}\n", "naq.yaml:2:37: schedules.s.args: expected a list, got 5"),
    ("schedules:\n  s: {every: 1m, task: 'a:b', kwargs: [1]}\n", "naq.yaml:2:39: schedules.s.kwargs: expected a mapping, got a list"),
    ("schedules:\n  s: {every: 1m, task: 'a:b', enabled: maybe}\n", 'naq.yaml:2:40: schedules.s.enabled: expected true or false, got "maybe"'),
    ("schedules:\n  s: {every: 1m, task: 'a:b', args: [2024-01-01]}\n", "naq.yaml:2:38: schedules.s.args[0]: expected plain data (text, numbers, true/false, lists, mappings), got the date 2024-01-01; quote it to pass it as text"),
    # anchors and merges
    ("schedules:\n  s: {every: 1m, task: 'a:b', args: &a [1, *a]}\n", "naq.yaml:2:37: schedules.s.args[1]: recursive alias"),
    ("queues: {q: &q {<<: *q}}", "naq.yaml:1:13: queues.q: a merge (<<) refers to itself"),
    ("queues: {q: {<<: 5}}", "naq.yaml:1:18: queues.q: << expects a mapping or a list of mappings"),
    ("queues: {q: !custom 5}", "naq.yaml:1:13: queues.q: unsupported YAML tag !custom"),
    # cross-field
    ("scheduler:\n  leader_election: {lease: 10s, renew_every: 10s}\n", "naq.yaml:2:46: scheduler.leader_election.renew_every: renew_every (10s) must be shorter than lease (10s)"),
    ("scheduler:\n  leader_election: {lease: 5s}\n", "naq.yaml:2:28: scheduler.leader_election.lease: renew_every (5s) must be shorter than lease (5s)"),
    ("scheduler:\n  leader_election: {lease: 10s, renew_every: 6s}\n", "naq.yaml:2:46: scheduler.leader_election.renew_every: renew_every (6s) must be at most half of lease (10s), so a renewal lands before the leader steps down at 3/4 of the lease"),
    ("schedules:\n  s: {every: 1m, task: 'a:b', missed: all}\n", 'naq.yaml:2:39: schedules.s.missed: expected one of skip, run_once, got "all"'),
    ("schedules:\n  s: {cron: '* * * * * 99', task: 'a:b'}\n", 'naq.yaml:2:13: schedules.s.cron: invalid cron expression "* * * * * 99"'),
    ("schedules:\n  s: {every: 1m, task: 'a:b', jitter: -1s}\n", 'naq.yaml:2:39: schedules.s.jitter: a duration cannot be negative, got "-1s"'),
    ("nats: {embedded: {sync: sometimes}}", 'naq.yaml:1:25: nats.embedded.sync: expected always or a duration like 1s, got "sometimes"'),
    ("nats: {embedded: {sync: 0s}}", 'naq.yaml:1:25: nats.embedded.sync: expected always or a duration like 1s, got "0s"'),
    ("nats: {monitoring: [nats://a:4222]}", 'naq.yaml:1:21: nats.monitoring[0]: expected a monitoring URL like http://10.0.0.1:8222, got "nats://a:4222"'),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_single_error(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_brief_example_position() -> None:
    text = """\
    nats:
      replicas: 1
    tasks:
      serializer: json
    queues:
      default:
        concurency: 3
    """
    assert errors(text) == [
        'naq.yaml:7:5: queues.default.concurency: unknown key (did you mean "concurrency"?)'
    ]


def test_all_errors_reported_at_once_in_file_order() -> None:
    text = """\
    logging: {level: verbose}
    queues:
      default:
        concurrency: many
        timeout: soon
    nats: {replicas: 0}
    schedules:
      s: {every: 1m, task: nope, queue: missing}
    """
    assert errors(text) == [
        'naq.yaml:1:18: logging.level: expected one of TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL, got "verbose"',
        'naq.yaml:4:18: queues.default.concurrency: expected a positive integer, got "many"',
        'naq.yaml:5:14: queues.default.timeout: expected a duration like 30s, 5m, 2h, got "soon"',
        "naq.yaml:6:18: nats.replicas: expected an integer from 1 to 5, got 0",
        'naq.yaml:8:24: schedules.s.task: expected a task like "package.module:function", got "nope"',
        'naq.yaml:8:37: schedules.s.queue: unknown queue "missing" (configured queues: default)',
    ]  # fmt: skip


def test_invalid_queue_still_counts_as_configured_for_schedules() -> None:
    text = """\
    queues:
      fast: {concurrency: 0}
    schedules:
      s: {every: 1m, task: 'a:b', queue: fast}
    """
    assert errors(text) == [
        "naq.yaml:2:23: queues.fast.concurrency: expected a positive integer, got 0"
    ]


# --- YAML syntax --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: b: c\n", "naq.yaml:1:5: invalid YAML: mapping values are not allowed here"),
        ("nats:\n\treplicas: 1\n", "naq.yaml:2:1: invalid YAML: found character '\\t' that cannot start any token"),
        ("queues: [a, b\nnats: {}\n", "naq.yaml:2:5: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence on line 1)"),
        ("x: 1\n---\ny: 2\n", "naq.yaml:2:1: invalid YAML: found another document (expected a single document in the stream on line 1)"),
        ("queues: *nope\n", "naq.yaml:1:9: invalid YAML: found undefined alias 'nope'"),
        ('a: "x\x00"\n', "naq.yaml:1:6: invalid YAML: unacceptable character U+0000"),
    ],
)  # fmt: skip
def test_yaml_syntax_error_position(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert str(info.value) == expected


# --- environment interpolation ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("plain", {}, "plain"),
        ("${X}", {"X": "1"}, "1"),
        ("a-${X}-b", {"X": "mid"}, "a-mid-b"),
        ("${X}${Y}", {"X": "1", "Y": "2"}, "12"),
        ("${X:-d}", {}, "d"),
        ("${X:-d}", {"X": ""}, "d"),
        ("${X-d}", {"X": ""}, ""),
        ("${X:-}", {}, ""),
        ("${X:-a b:c}", {}, "a b:c"),
        ("${X:?needed}", {"X": "v"}, "v"),
        ("$$", {}, "$"),
        ("$${X}", {"X": "1"}, "${X}"),
        ("pa$word", {}, "pa$word"),
        ("cost: 5$", {}, "cost: 5$"),
    ],
)
def test_interpolate(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("${X}", {}, 'environment variable "X" is not set (use ${X:-default} to give a default)'),
        (
            "${X:?set X to the broker URL}",
            {},
            'environment variable "X" is not set: set X to the broker URL',
        ),
        ("${X:?}", {"X": ""}, 'environment variable "X" is empty'),
        ("${X", {}, 'unterminated "${X": add the closing "}"'),
        (
            "${1X}",
            {},
            'invalid reference "${1X}": expected ${NAME}, ${NAME:-default} or ${NAME:?message}',
        ),
        ("${A:-${B}}", {}, "nested ${...} references are not supported"),
    ],
)
def test_interpolate_errors(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate(text, env)
    assert str(info.value) == message


def test_env_in_config_values() -> None:
    config = parse(
        """\
        nats:
          servers: ${NATS_URLS}
          embedded: {store_dir: "${DATA:-/tmp}/nats$$1"}
        queues:
          default:
            concurrency: ${WORKERS:-4}  # plain scalars only in block style
            timeout: ${TIMEOUT}
        schedules:
          s:
            every: 1m
            task: 'a:b'
            args:
              - ${ARG}
              - "${ARG}"
              - ${NUM}
              - "${NUM}"
            kwargs:
              url: ${NATS_URLS}
        """,
        NATS_URLS="nats://a:4222,nats://b:4222",
        TIMEOUT="2m",
        ARG="[1, 2]",
        NUM="7",
    )
    assert config.nats.servers == ("nats://a:4222", "nats://b:4222")
    assert config.nats.embedded.store_dir == "/tmp/nats$1"
    assert config.queues["default"].concurrency == 4  # unquoted: resolved like a literal 4
    assert config.queues["default"].timeout == 120.0
    # env values are never parsed as YAML structure, only re-typed when unquoted
    assert config.schedules["s"].args == ("[1, 2]", "[1, 2]", 7, "7")
    assert config.schedules["s"].kwargs == {"url": "nats://a:4222,nats://b:4222"}


def test_env_errors_have_positions() -> None:
    text = """\
    queues:
      default:
        concurrency: "${WORKERS}"
        timeout: ${TIMEOUT}
    logging: {level: "${LEVEL:?set LEVEL}"}
    """
    assert errors(text, WORKERS="8") == [
        'naq.yaml:3:18: queues.default.concurrency: expected a positive integer, got "8"',
        'naq.yaml:4:14: queues.default.timeout: environment variable "TIMEOUT" is not set (use ${TIMEOUT:-default} to give a default)',
        'naq.yaml:5:18: logging.level: environment variable "LEVEL" is not set: set LEVEL',
    ]  # fmt: skip


# --- files and the error type -------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: config file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a config file"


def test_file_errors_use_the_path_as_given(tmp_path: Path) -> None:
    path = tmp_path / "naq.yaml"
    path.write_text("nats: {replicas: 9}\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}:1:18: nats.replicas: expected an integer from 1 to 5, got 9"


def test_config_error_is_picklable_and_lists_issues() -> None:
    issues = [
        ConfigIssue("naq.yaml", 1, 2, "a.b", "bad"),
        ConfigIssue("naq.yaml", None, None, "", "whole file"),
    ]
    error = pickle.loads(pickle.dumps(ConfigError(issues)))
    assert error.issues == issues
    assert str(error) == "naq.yaml:1:2: a.b: bad\nnaq.yaml: whole file"


def test_config_is_picklable() -> None:
    config = parse_config(EXAMPLE, env={})
    assert pickle.loads(pickle.dumps(config)) == config
