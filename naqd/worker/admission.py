"""Every check a job message must pass before a worker decodes it for real or imports
anything: size, encoding, signature, envelope shape, queue, task allow-list. Pure: no
I/O, no imports of task code, so it can be fuzzed with arbitrary bytes.

Any failure raises JobRejected, an EnvelopeError: the message can never succeed, so the
runner does not retry it (it goes to the dead-letter stream with the reason).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from naqd.models import Config
from naqd.protocol.envelope import Envelope, EnvelopeError, decode_job, valid_job_id
from naqd.protocol.names import HDR_ENCODING, HDR_MSG_ID, HDR_SIGNATURE, is_requeue_msg_id
from naqd.protocol.signing import Keyring, SignatureError, keyring_from_config


class JobRejected(EnvelopeError):
    """A job refused before it ran; `reason` is a short machine-friendly word."""

    def __init__(self, reason: str, detail: str, job_id: str | None = None, task: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.job_id = job_id
        self.task = task


# Verdicts per (allow-list, task name): a worker checks the same few names on every job.
_ALLOWED: dict[tuple[tuple[str, ...], str], bool] = {}


@dataclass(frozen=True)
class TaskAllowList:
    """Tasks a worker may run: `module:qualname` globs. A bare module pattern means all
    of its public functions. Empty allows nothing (safe by default)."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def build(cls, imports: Iterable[str], allow: Iterable[str]) -> TaskAllowList:
        patterns = [f"{_escape(m)}:*" for m in imports]
        patterns += [p if ":" in p else f"{p}:*" for p in allow]
        return cls(tuple(dict.fromkeys(patterns)))

    def allows(self, task: str) -> bool:
        verdict = _ALLOWED.get((self.patterns, task))
        if verdict is None:
            verdict = self._allows(task)
            if len(_ALLOWED) >= 10_000:
                _ALLOWED.clear()
            _ALLOWED[(self.patterns, task)] = verdict
        return verdict

    def _allows(self, task: str) -> bool:
        _, _, qualname = task.partition(":")
        if any(part.startswith("_") for part in qualname.split(".")):
            return False  # private and dunder names are never tasks
        return any(fnmatch.fnmatchcase(task, p) for p in self.patterns)


def _escape(module: str) -> str:
    """An imported module name taken literally (module names hold no glob characters,
    but be exact anyway)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in module)


@dataclass(frozen=True)
class AdmissionPolicy:
    serializer: str = "json"
    max_payload: int = 1024 * 1024
    keyring: Keyring | None = field(default=None, repr=False)
    require_signed_json: bool = False
    allowed: TaskAllowList = field(default_factory=TaskAllowList)
    queue: str | None = None  # the queue this worker consumes: envelopes must agree

    @classmethod
    def from_config(cls, config: Config, queue: str | None = None) -> AdmissionPolicy:
        """Reads the signing key file, if one is configured (the only I/O here)."""
        tasks = config.tasks
        return cls(
            serializer=tasks.serializer,
            max_payload=tasks.max_payload,
            keyring=keyring_from_config(tasks),
            require_signed_json=tasks.sign_json,
            allowed=TaskAllowList.build(tasks.imports, tasks.allow),
            queue=queue,
        )


def admit(data: bytes, headers: Mapping[str, str] | None, policy: AdmissionPolicy) -> Envelope:
    """The envelope of an acceptable job, or JobRejected saying why not."""
    if len(data) > policy.max_payload:
        raise JobRejected(
            "too large", f"payload is {len(data)} bytes, the limit is {policy.max_payload}"
        )
    headers = headers or {}
    encoding = headers.get(HDR_ENCODING, "json")
    if encoding not in ("json", "pickle"):
        raise JobRejected("bad encoding", f"unknown encoding {encoding[:40]!r}")
    if encoding == "pickle" and policy.serializer != "pickle":
        raise JobRejected("pickle refused", "tasks.serializer is json: pickles are never loaded")
    signature = headers.get(HDR_SIGNATURE)
    must_sign = encoding == "pickle" or policy.require_signed_json
    if policy.keyring is not None and (must_sign or signature is not None):
        try:
            policy.keyring.verify(data, signature, encoding)
        except SignatureError as exc:
            raise JobRejected("bad signature", str(exc)) from None
    elif must_sign:
        raise JobRejected("bad signature", "no signing key configured to verify it")
    try:
        env = decode_job(data, encoding)
    except EnvelopeError as exc:
        raise JobRejected("malformed", str(exc), exc.job_id, exc.task) from None
    msg_id = headers.get(HDR_MSG_ID)
    if msg_id is not None and msg_id != env.id and not is_requeue_msg_id(msg_id, env.id):
        # Dedupe would use one id and the record another: a producer's bug, made loud.
        raise JobRejected(
            "id mismatch",
            f"Nats-Msg-Id {msg_id[:210]!r} differs from the envelope id {env.id!r}",
            env.id,
            env.task,
        )
    if policy.queue is not None and env.queue != policy.queue:
        raise JobRejected(
            "wrong queue",
            f"job for queue {env.queue[:60]!r} arrived on queue {policy.queue!r}",
            env.id,
            env.task,
        )
    if not policy.allowed.allows(env.task):
        raise JobRejected(
            "task not allowed",
            f"{env.task} is not in tasks.imports or tasks.allow (it was not imported)",
            env.id,
            env.task,
        )
    return env


def refused_job(exc: Exception, headers: Mapping[str, str] | None) -> tuple[str | None, str]:
    """The id and task to file a refused job under: the envelope's id when it was
    readable and valid, else a valid Nats-Msg-Id, else None (filed by stream sequence,
    no record: nobody can be waiting on an id that is not one)."""
    job_id = getattr(exc, "job_id", None)
    task = getattr(exc, "task", "")
    if job_id is None:
        header = (headers or {}).get(HDR_MSG_ID)
        job_id = header if valid_job_id(header) else None
    return job_id, task
