"""The options of one enqueue as one value. Pure.

Every enqueue path (`enqueue`, `enqueue_at`/`enqueue_in`, `enqueue_many`, a typed task's
`.using(...)`, the scheduler's fires) fills an `Options`; `messages.shape` turns it and
the task's arguments into the one message that is published. Options that a task
declares (`@naqd.task(...)`) are an `Options` too, laid under the per-enqueue ones with
`over` (docs/client.md#precedence)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from naqd.client.unique_rules import DELAYED_MODES as WAITING_MODES
from naqd.protocol.envelope import validate_job_id


@dataclass(frozen=True, slots=True)
class Options:
    """`None` (or `()` for depends_on) means "not set here": a lower layer or the queue's
    YAML decides. Values are checked where the message is shaped, not here."""

    queue: str | None = None
    job_id: str | None = None
    retries: int | None = None
    timeout: float | None = None
    result_ttl: float | None = None
    backoff: Any = None
    retry_on: Any = None
    dont_retry_on: Any = None
    priority: str | None = None
    unique_key: str | None = None
    unique_for: float | timedelta | None = None
    unique_mode: str | None = None  # until_done | throttle | debounce | latest (unique.py)
    depends_on: tuple[str, ...] = ()
    run_at: datetime | None = None  # a delayed job: when the server fires it (aware)

    def over(self, base: Options) -> Options:
        """These options, with every field not set here taken from `base`."""
        if base is _EMPTY or base == _EMPTY:
            return self
        changes = {
            name: getattr(base, name)
            for name in _FIELDS
            if _unset(getattr(self, name)) and not _unset(getattr(base, name))
        }
        return dataclasses.replace(self, **changes) if changes else self

    def replace(self, **changes: Any) -> Options:
        """A copy with `changes`; depends_on is normalised as in `of`."""
        if "depends_on" in changes:
            changes["depends_on"] = parents(changes["depends_on"])
        return dataclasses.replace(self, **changes)

    @property
    def unique(self) -> bool:
        return (
            self.unique_key is not None
            or self.unique_for is not None
            or self.unique_mode is not None
        )

    def check(self) -> None:
        """Combinations no job can have (the values themselves are checked when shaped)."""
        if self.run_at is not None and self.depends_on:
            raise TypeError("depends_on cannot be combined with enqueue_at / enqueue_in")
        if self.unique_mode in WAITING_MODES:
            # These are delayed jobs themselves, waiting `unique_for` (unique.py).
            if self.run_at is not None:
                raise TypeError(
                    f"unique_mode={self.unique_mode!r} waits unique_for itself: use "
                    "enqueue, not enqueue_at / enqueue_in"
                )
            if self.depends_on:
                raise TypeError(f"unique_mode={self.unique_mode!r} cannot have depends_on")
            if self.unique_for is None:
                raise TypeError(
                    f"unique_mode={self.unique_mode!r} needs unique_for: how long the job "
                    "waits for another enqueue with its key"
                )
        if self.priority is not None and self.depends_on:
            raise TypeError("priority cannot be combined with depends_on")

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Options:
        if not values:
            return _EMPTY
        if "depends_on" in values:
            values = {**values, "depends_on": parents(values["depends_on"])}
        return cls(**values)


_EMPTY = Options()
_FIELDS = tuple(f.name for f in fields(Options))


NAMES = frozenset(_FIELDS) - {"run_at"}
"""The keywords that `Client.enqueue` reads as options when the task is a name or a
plain function (a typed task's keywords always go to the task)."""


MANY_OPTIONS = frozenset({"queue", "retries", "timeout", "result_ttl", "priority"})
"""What `enqueue_many` takes: per-job ids, parents, delays and unique keys it has not."""


def split_kwargs(kwargs: dict[str, Any]) -> tuple[Options, dict[str, Any]]:
    """Options and the task's keyword arguments, from one `**kwargs` of enqueue: option
    names are options, `task_kwargs={...}` is merged over the rest (it wins)."""
    named = {k: kwargs.pop(k) for k in NAMES & kwargs.keys()}
    extra = kwargs.pop("task_kwargs", None)
    if extra:
        kwargs = {**kwargs, **extra}
    return Options.of(named), kwargs


def parents(depends_on: Iterable[Any] | None) -> tuple[str, ...]:
    """Job ids from ids or job handles (anything with an `id`: Job, SyncJob)."""
    return tuple(validate_job_id(getattr(p, "id", p)) for p in depends_on or ())


def _unset(value: Any) -> bool:
    return value is None or value == ()
