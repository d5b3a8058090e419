"""The middleware machinery (naqd/middleware.py): which hooks are called, how a raising
one is contained, naqd's own headers kept, around_job's enter/leave, loading from
"module:Name", and the `middleware:` key of naq.yaml."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from naqd.config import ConfigError, load_config
from naqd.middleware import (
    EnqueueMessage,
    Hooks,
    Middleware,
    hooks_of,
    job_info,
    load_middleware,
    set_error_reporter,
)


@pytest.fixture
def reported() -> Iterator[list[tuple[str, str]]]:
    got: list[tuple[str, str]] = []
    set_error_reporter(lambda hook, mw, exc: got.append((hook, str(exc))))
    yield got
    set_error_reporter(None)


class OnlySuccess(Middleware):
    def on_success(self, job: Any, result: Any) -> None:
        pass


def test_only_the_hooks_a_middleware_defines_are_called() -> None:
    hooks = Hooks([OnlySuccess(), Middleware()])
    assert len(hooks.on_success) == 1
    assert hooks.on_retry == () and hooks.around_job == () and hooks.before_enqueue == ()
    assert hooks  # two middleware, even if one does nothing
    assert hooks_of([]) is None and hooks_of(None) is None


async def test_sync_and_async_hooks_run_in_order_past_one_that_raises(
    reported: list[tuple[str, str]],
) -> None:
    calls: list[str] = []

    class A:
        def on_cancel(self, job: Any) -> None:
            calls.append("a")

    class B:
        async def on_cancel(self, job: Any) -> None:
            calls.append("b")
            raise ValueError("b fails")

    class C:
        def on_cancel(self, job: Any) -> None:
            calls.append("c")
            raise SystemExit(2)  # contained like a task's own sys.exit

    class D:
        async def on_cancel(self, job: Any) -> None:
            calls.append("d")

    hooks = Hooks([A(), B(), C(), D()])
    await hooks.call("on_cancel", hooks.on_cancel, None)
    assert calls == ["a", "b", "c", "d"]
    assert reported == [("on_cancel", "b fails"), ("on_cancel", "2")]


async def test_before_enqueue_keeps_naqds_own_headers(reported: list[tuple[str, str]]) -> None:
    class Edit:
        def before_enqueue(self, message: EnqueueMessage) -> None:
            message.headers["traceparent"] = "00-abc-def-01"
            message.headers["Nats-Msg-Id"] = "forged"
            message.headers["Naqd-Unique-Lock"] = "forged"
            del message.headers["Naqd-Signature"]
            message.headers["X-Count"] = 3  # type: ignore[assignment]

    msg = EnqueueMessage("j1", "m:t", "q", {"Nats-Msg-Id": "j1", "Naqd-Signature": "k:sig"})
    await Hooks([Edit()]).enqueue(msg)
    assert msg.headers == {
        "Nats-Msg-Id": "j1",
        "Naqd-Signature": "k:sig",
        "traceparent": "00-abc-def-01",
    }
    assert [h for h, _ in reported] == ["before_enqueue"]  # the non-string header


async def test_around_job_enters_in_order_and_leaves_in_reverse(
    reported: list[tuple[str, str]],
) -> None:
    calls: list[Any] = []

    def sync_cm(name: str) -> Any:
        @contextlib.contextmanager
        def cm() -> Iterator[None]:
            calls.append(f"enter {name}")
            try:
                yield
            except Exception as exc:
                calls.append(f"exit {name} {exc}")
                return  # tries to swallow the error: ignored
            calls.append(f"exit {name}")

        return cm()

    class Async:
        async def __aenter__(self) -> None:
            calls.append("enter async")

        async def __aexit__(self, *exc: Any) -> bool:
            calls.append(f"exit async {exc[1]}")
            return True

    class Outer:
        def around_job(self, job: Any) -> Any:
            return sync_cm("outer")

    class Broken:
        def around_job(self, job: Any) -> Any:
            raise RuntimeError("no context today")

    class Inner:
        async def around_job(self, job: Any) -> Any:  # a coroutine returning the cm
            return Async()

    class Nothing:
        def around_job(self, job: Any) -> None:
            return None

    hooks = Hooks([Outer(), Broken(), Inner(), Nothing()])
    job = job_info("j1", "m:t", "q", 1, {"traceparent": "x"})
    entered = await hooks.enter(job)
    assert calls == ["enter outer", "enter async"] and len(entered) == 2
    await hooks.leave(entered, KeyError("boom"))
    assert calls[2:] == ["exit async 'boom'", "exit outer 'boom'"]
    assert reported == [("around_job", "no context today")]
    with pytest.raises(TypeError):
        job.headers["traceparent"] = "y"  # type: ignore[index]


def test_load_middleware(tmp_path: Path) -> None:
    instance = OnlySuccess()
    loaded = load_middleware(["tests.mw:Recorder", "tests.mw:Raising", instance])
    assert type(loaded[0]).__name__ == "Recorder" and loaded[2] is instance
    with pytest.raises(ImportError, match=r"tests\.nope:X"):
        load_middleware(["tests.nope:X"])
    with pytest.raises(AttributeError, match=r"tests\.mw:Nope"):
        load_middleware(["tests.mw:Nope"])
    with pytest.raises(ValueError, match="expected"):
        load_middleware(["tests.mw"])


def test_the_middleware_key(tmp_path: Path) -> None:
    path = tmp_path / "naq.yaml"
    path.write_text("middleware: [tests.mw:Audit, myapp.mw:Tenant]\n")
    assert load_config(path).middleware == ("tests.mw:Audit", "myapp.mw:Tenant")
    path.write_text("middleware: [tests.mw]\n")
    with pytest.raises(ConfigError, match=r"middleware\[0\]: expected \"package.module:Name\""):
        load_config(path)


async def test_a_skipped_missed_tick_reaches_on_missed_tick() -> None:
    """The fire loop's decision (no NATS: nothing fires) for a schedule whose cursor is
    an hour old: with `missed: skip` the latest due tick is dropped and reported."""
    from datetime import UTC, datetime, timedelta

    from naqd.client import Client
    from naqd.models import Config, ScheduleConfig
    from naqd.scheduler.firing import FireLoop

    seen: list[tuple[str, datetime]] = []

    class Missed(Middleware):
        async def on_missed_tick(self, schedule: Any, tick: datetime) -> None:
            seen.append((schedule.name, tick))

    schedules = {
        "skip": ScheduleConfig(name="skip", task="m:t", every=60.0, missed="skip"),
        "once": ScheduleConfig(name="once", task="m:t", every=60.0),  # run_once: fires
    }
    client = Client("nats://unused", middleware=[Missed()])
    loop = FireLoop(Config(schedules=schedules), client, None, lambda: True, lambda: 1)  # type: ignore[arg-type]
    tick = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # a whole minute: a tick of both
    wave: list[Any] = []
    for name in schedules:
        loop.cursors[name] = tick - timedelta(hours=1)
        loop._reset(name)
        loop._decide(name, tick + timedelta(seconds=30), wave)  # 30 s late: missed
    await asyncio.gather(*loop.pending)
    assert seen == [("skip", tick)]
    assert [fire.schedule.name for fire in wave] == ["once"]
