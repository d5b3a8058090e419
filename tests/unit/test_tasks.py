"""Typed tasks (naqd/client/tasks.py) and how a worker resolves them (worker/tasks.py):
pure, no server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import naqd
from naqd.client import Client
from naqd.client.options import Options
from naqd.client.tasks import AsyncTask, SyncTask, Task, loaded, prepare
from naqd.protocol.envelope import Envelope
from naqd.worker.tasks import declared, fill, is_coroutine_task, resolve_task, task_policy
from tests import typed_tasks
from tests.typed_tasks import double, send_email


def test_decorator_keeps_the_function(tmp_path: Path) -> None:
    assert isinstance(send_email, SyncTask) and isinstance(double, AsyncTask)
    assert send_email.name == "tests.typed_tasks:send_email"
    assert send_email.__name__ == "send_email" and send_email.__doc__
    assert send_email(str(tmp_path), "a@b.c") == "a@b.c via smtp"  # runs here, now
    assert asyncio.run(double(4)) == 8
    assert repr(double) == "<task tests.typed_tasks:double>"


def plain(x: int) -> int:
    return x


def test_bare_and_called_forms() -> None:
    assert naqd.task(plain).options == Options()
    assert naqd.task()(plain).options == Options()
    assert naqd.task(plain)(2) == 2
    with pytest.raises(TypeError, match="a task already"):
        naqd.task(naqd.task(plain))
    with pytest.raises(TypeError, match="not an importable module-level function"):
        naqd.task(lambda: None)  # the worker could never import it: refused at once


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"queue": "no spaces"}, "invalid queue name"),
        ({"retries": -1}, "retries must be"),
        ({"timeout": -5}, "timeout must be"),
        ({"backoff": {"strategy": "random"}}, "backoff strategy"),
        ({"retry_on": ["not a name"]}, "exception class name"),
        ({"priority": "a.b"}, "invalid priority"),
        ({"unique_for": 0}, "unique_for must be"),
    ],
)
def test_bad_options_fail_at_decoration(options: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        naqd.task(**options)  # type: ignore[call-overload]


def test_options_are_normalised() -> None:
    opts = naqd.task(
        retries=3,
        timeout=timedelta(minutes=1),
        backoff=(1, 2),
        dont_retry_on=[ValueError, "app.Error"],
        unique_for=1.5,
    )(plain).options
    assert (opts.retries, opts.timeout, opts.backoff) == (3, 60.0, [1.0, 2.0])
    assert opts.dont_retry_on == ("ValueError", "app.Error") and opts.unique_for == 2.0


def test_every_keyword_of_a_task_goes_to_it() -> None:
    name, kwargs, options = prepare(send_email, ("d", "a@b.c"), {"queue": "q2"})
    assert name == "tests.typed_tasks:send_email"
    assert kwargs == {"queue": "q2"} and options == Options()


def test_using_wins_over_the_task_and_keeps_it() -> None:
    t = double.using(queue="other", job_id="j1").using(retries=0)
    assert isinstance(t, AsyncTask) and t.name == double.name
    opts = t.enqueue_options()
    assert (opts.queue, opts.job_id, opts.retries) == ("other", "j1", 0)
    assert double.enqueue_options().queue == "typed"  # the original is untouched
    # Only the producer-side options of the task apply at enqueue; the worker applies
    # retries, timeouts and the rest from the task it imports.
    assert send_email.enqueue_options() == Options()


def test_delay_counts_from_the_enqueue() -> None:
    t = send_email.using(delay=60)
    first = t.enqueue_options().run_at
    assert first is not None
    assert abs(first.timestamp() - (datetime.now(UTC).timestamp() + 60)) < 5
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert send_email.using(at=at).enqueue_options().run_at == at
    with pytest.raises(TypeError, match="delay or at"):
        send_email.using(delay=1, at=at)
    with pytest.raises(ValueError, match="naive"):
        send_email.using(at=datetime(2030, 1, 1))


def test_arguments_are_bound_at_enqueue() -> None:
    with pytest.raises(TypeError, match="missing a required argument: 'to'"):
        prepare(send_email, ("d",), {})
    with pytest.raises(TypeError, match="unexpected keyword argument 'subject'"):
        prepare(send_email, ("d", "a@b.c"), {"subject": "x"})
    # A plain function, and a name whose module is loaded here, are bound too.
    with pytest.raises(TypeError, match="too many positional"):
        prepare(typed_tasks._count, ("d", 2), {})
    with pytest.raises(TypeError, match="too many positional"):
        prepare("tests.typed_tasks:double", (1, 2), {})
    # A name this process has not imported goes out unchecked: the worker decides.
    prepare("tests.not_imported_anywhere:f", (1, 2, 3), {})


def test_a_loaded_name_gets_the_tasks_routing() -> None:
    _, kwargs, options = prepare("tests.typed_tasks:double", (1,), {"priority": "high"})
    assert (options.queue, options.priority) == ("typed", "high")
    _, _, options = prepare("tests.typed_tasks:double", (1,), {"queue": "mine"})
    assert options.queue == "mine"  # the enqueue's own option wins
    # A name's option keywords are options; task_kwargs carries clashing names.
    _, kwargs, options = prepare(
        "tests.typed_tasks:send_email", ("d", "a@b"), {"queue": "q", "task_kwargs": {"queue": "x"}}
    )
    assert options.queue == "q" and kwargs == {"queue": "x"}


def test_loaded_never_imports() -> None:
    code = (
        "import sys; from naqd.client.tasks import loaded; "
        "assert loaded('tests.typed_tasks:double') is None; "
        "assert 'tests.typed_tasks' not in sys.modules; "
        "import tests.typed_tasks as t; assert loaded('tests.typed_tasks:double') is t.double; "
        "assert loaded('tests.typed_tasks:_count') is None; "
        "assert loaded('tests.typed_tasks:asyncio.sleep') is None"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert loaded("tests.typed_tasks") is None


def test_message_of_a_task_object() -> None:
    c = Client("nats://x")
    name, kwargs, options = prepare(double.using(job_id="j9"), (3,), {})
    msg = c.shape(name, (3,), kwargs, options)
    assert (msg.task, msg.queue, msg.job_id) == ("tests.typed_tasks:double", "typed", "j9")


def test_enqueue_many_takes_a_tasks_options_from_using() -> None:
    c = Client("nats://x")
    with pytest.raises(TypeError, match="enqueue_many makes jobs to run now"):
        c.shape_many("m:f", [(1,)], Options(job_id="x"))


def test_worker_resolves_a_task_to_its_function() -> None:
    assert resolve_task("tests.typed_tasks:double") is double.fn
    assert is_coroutine_task("tests.typed_tasks:double")  # runs as a coroutine, not in a thread
    assert not is_coroutine_task("tests.typed_tasks:send_email")
    assert task_policy("tests.typed_tasks:send_email") == (
        ("retries", 3),
        ("backoff", [0.05]),
        ("dont_retry_on", ("tests.typed_tasks.InvalidAddress",)),
    )
    assert task_policy("tests.typed_tasks:double") == ()  # queue only: the producer's
    assert task_policy("tests.tasks:add") == ()


def _env(**kw: object) -> Envelope:
    return Envelope(id="j", task="m:f", queue="q", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("job", "task", "expected"),
    [
        # nothing per job: the task's options
        ({}, {"retries": 3, "timeout": 9.0}, {"retries": 3, "timeout": 9.0}),
        # the enqueue's own options win, 0 included
        ({"retries": 0}, {"retries": 3}, {"retries": 0}),
        ({"result_ttl": 0.0}, {"result_ttl": 60.0}, {"result_ttl": 0.0}),
        ({"backoff": [1.0]}, {"backoff": {"strategy": "fixed"}}, {"backoff": [1.0]}),
        # neither: None, so the queue's YAML (then the defaults) decide in the worker
        ({}, {}, {"retries": None, "timeout": None, "dont_retry_on": None}),
        ({}, {"dont_retry_on": ("X",)}, {"dont_retry_on": ("X",), "retry_on": None}),
        # routing options are the producer's: the worker ignores them
        ({}, {"queue": "other", "priority": "high"}, {"queue": "q"}),
    ],
)
def test_policy_precedence(
    job: dict[str, object], task: dict[str, object], expected: dict[str, object]
) -> None:
    env = _env(**job)
    fill(env, declared(Options(**task)))  # type: ignore[arg-type]
    for name, value in expected.items():
        assert getattr(env, name) == value, name


def test_task_is_generic_for_annotations() -> None:
    holder: list[Task[[int], int]] = [double]  # type: ignore[list-item]
    assert holder
