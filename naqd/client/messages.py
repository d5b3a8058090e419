"""Job messages as a producer builds them: subject, payload and headers. Pure: names,
options and arguments are checked here, before anything is sent (docs/protocol.md)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from naqd.client.errors import PayloadTooLarge
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
from naqd.protocol.names import HDR_ENCODING, HDR_MSG_ID, HDR_SIGNATURE, priority_subject
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


class BuildMixin:
    """Mixed into Client; needs `serializer`, `keyring`, `max_payload`, `default_queue`."""

    serializer: Encoding
    keyring: Keyring | None
    max_payload: int
    default_queue: str

    def build(
        self,
        task: str | Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        queue: str | None = None,
        job_id: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        backoff: Any = None,
        retry_on: Any = None,
        dont_retry_on: Any = None,
        priority: str | None = None,
    ) -> tuple[str, bytes, dict[str, str]]:
        """Subject, payload and headers of a job: pure, shared by every enqueue path."""
        env = Envelope(
            id=validate_job_id(job_id) if job_id is not None else new_job_id(),
            task=validate_task(task_name(task)),
            queue=validate_queue(queue or self.default_queue),
            args=tuple(args),
            kwargs=kwargs,
            enqueued_at=time.time(),
            retries=None if retries is None else int(validate_option("retries", retries) or 0),
            timeout=validate_option("timeout", timeout),
            result_ttl=validate_option("result_ttl", result_ttl),
            backoff=check_backoff(backoff),
            retry_on=exception_names(retry_on),
            dont_retry_on=exception_names(dont_retry_on),
        )
        subject = priority_subject(env.queue, validate_priority(priority))
        return subject, *self._sealed(env.task, env.id, encode_job(env, self.serializer))

    def build_many(
        self, task: str | Callable[..., Any], calls: list[tuple[Any, ...]], **options: Any
    ) -> list[tuple[str, bytes, dict[str, str]]]:
        """build() for many calls of one task: the names and options are checked once,
        then each call only gets its id, arguments and time (enqueue_many's hot loop)."""
        if not calls:
            return []
        first = self.build(task, calls[0], {}, **options)
        if self.serializer != "json":
            return [first, *(self.build(task, args, {}, **options) for args in calls[1:])]
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
