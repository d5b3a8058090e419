"""Job messages as a producer builds them: subject, payload and headers. Pure: names,
options and arguments are checked here, before anything is sent (docs/protocol.md)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from naqd.client.delayed import schedule_headers
from naqd.client.errors import PayloadTooLarge
from naqd.client.options import Options
from naqd.client.unique_rules import (
    UniqueSpec,
    lock_key,
    unique_key_of,
    unique_mode,
    unique_window,
)
from naqd.protocol.envelope import (
    Envelope,
    encode_job,
    encode_job_dict,
    validate_job_id,
    validate_option,
    validate_priority,
    validate_queue,
    validate_task,
)
from naqd.protocol.names import (
    HDR_DEPENDS_ON,
    HDR_ENCODING,
    HDR_MSG_ID,
    HDR_SIGNATURE,
    HDR_UNIQUE,
    delayed_subject,
    dependent_subject,
    holder_msg_id,
    priority_subject,
)
from naqd.protocol.options import check_backoff, exception_names

if TYPE_CHECKING:
    from naqd.protocol.envelope import Encoding
    from naqd.protocol.signing import Keyring


def task_name(task: str | Callable[..., Any]) -> str:
    """'module:qualname' for a callable; strings pass through."""
    if isinstance(task, str):
        return task
    module, qualname = getattr(task, "__module__", None), getattr(task, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise TypeError(f"{task!r} is not an importable module-level function")
    return f"{module}:{qualname}"


def new_job_id() -> str:
    return uuid.uuid4().hex


def _option(name: str, value: float) -> float:
    return validate_option(name, value) or 0


@dataclass(slots=True)
class Message:
    """One job as it is published: where to, its bytes and its headers, plus the unique
    lock to take first. `headers` is a fresh dict per message; a header added to it is
    carried by the job the worker receives (also through a delayed or dependent holder),
    and none of them is covered by the signature, which signs the payload only."""

    job_id: str
    task: str
    queue: str
    subject: str  # the queue's subject, or a holder's (delayed, dependent)
    payload: bytes
    headers: dict[str, str]
    unique: UniqueSpec | None = None  # the key to claim first, and how

    def parts(self) -> tuple[str, bytes, dict[str, str]]:
        return self.subject, self.payload, self.headers


class BuildMixin:
    """Mixed into Client; needs `serializer`, `keyring`, `max_payload`, `default_queue`."""

    serializer: Encoding
    keyring: Keyring | None
    max_payload: int
    default_queue: str

    def shape(
        self,
        task: str | Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: Options,
    ) -> Message:
        """The one place a job message is shaped, for every enqueue path: options and
        arguments checked, the envelope encoded, sized and signed, then the headers and
        the subject chosen by the route (ready now, delayed, waiting on parents)."""
        options.check()
        env = Envelope(
            id=validate_job_id(options.job_id) if options.job_id is not None else new_job_id(),
            task=validate_task(task_name(task)),
            queue=validate_queue(options.queue or self.default_queue),
            args=tuple(args),
            kwargs=kwargs,
            enqueued_at=time.time(),
            retries=None if options.retries is None else int(_option("retries", options.retries)),
            timeout=validate_option("timeout", options.timeout),
            result_ttl=validate_option("result_ttl", options.result_ttl),
            backoff=check_backoff(options.backoff),
            retry_on=exception_names(options.retry_on),
            dont_retry_on=exception_names(options.dont_retry_on),
        )
        target = priority_subject(env.queue, validate_priority(options.priority))
        payload, headers = self._sealed(env.task, env.id, encode_job(env, self.serializer))
        unique = None
        if options.unique:
            key = unique_key_of(env.task, env.queue, env.args, kwargs, options.unique_key)
            mode = unique_mode(options.unique_mode)
            unique = UniqueSpec(key, unique_window(options.unique_for), mode)
            if mode == "until_done":  # the worker frees it when the job ends
                headers[HDR_UNIQUE] = lock_key(key)
        # The job's own headers are complete here: a producer hook that adds headers
        # (trace context, tenant) belongs at this point, before the route wraps the job.
        subject = target
        if options.run_at is not None:
            subject = delayed_subject(env.queue, env.id)
            headers[HDR_MSG_ID] = holder_msg_id(env.id)
            headers.update(schedule_headers(options.run_at, target))
        elif options.depends_on:
            subject = dependent_subject(env.queue, env.id)
            headers[HDR_MSG_ID] = holder_msg_id(env.id)
            headers[HDR_DEPENDS_ON] = ",".join(options.depends_on)
        return Message(env.id, env.task, env.queue, subject, payload, headers, unique)

    def build(
        self,
        task: str | Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        **options: Any,
    ) -> tuple[str, bytes, dict[str, str]]:
        """Subject, payload and headers of a job enqueued now (the scheduler's fires)."""
        return self.shape(task, args, kwargs, Options.of(options)).parts()

    def build_many(
        self, task: str | Callable[..., Any], calls: list[tuple[Any, ...]], **options: Any
    ) -> list[tuple[str, bytes, dict[str, str]]]:
        return self.shape_many(task, calls, Options.of(options))

    def shape_many(
        self, task: str | Callable[..., Any], calls: list[tuple[Any, ...]], opts: Options
    ) -> list[tuple[str, bytes, dict[str, str]]]:
        """shape() for many calls of one task: the names and options are checked once,
        then each call only gets its id, arguments and time (enqueue_many's hot loop)."""
        if opts.job_id is not None or opts.depends_on or opts.unique or opts.run_at:
            raise TypeError(
                "enqueue_many makes jobs to run now, with generated ids: use enqueue for a "
                "job id, depends_on, a unique key or a delay"
            )
        if not calls:
            return []
        first = self.shape(task, calls[0], {}, opts).parts()
        if self.serializer != "json":
            return [first, *(self.shape(task, args, {}, opts).parts() for args in calls[1:])]
        subject = first[0]
        d = json.loads(first[1])
        out = [first]
        for args in calls[1:]:
            d["id"], d["args"], d["enqueued_at"] = new_job_id(), list(args), time.time()
            out.append((subject, *self._sealed(d["task"], d["id"], encode_job_dict(d))))
        return out

    def _sealed(self, task: str, job_id: str, payload: bytes) -> tuple[bytes, dict[str, str]]:
        """The size check, the dedupe id, the encoding and the signature of a payload."""
        if len(payload) > self.max_payload:
            raise PayloadTooLarge(
                f"job {task} encodes to {len(payload)} bytes, over the "
                f"{self.max_payload}-byte limit (tasks.max_payload): pass a reference "
                "(a key, a URL) instead of the data"
            )
        headers = {HDR_MSG_ID: job_id}
        if self.serializer != "json":
            headers[HDR_ENCODING] = self.serializer
        if self.keyring is not None:
            headers[HDR_SIGNATURE] = self.keyring.sign(payload, self.serializer)
        return payload, headers
