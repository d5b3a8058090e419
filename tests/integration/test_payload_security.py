"""Payload safety at a live worker: JSON mode never unpickles, the allow-list is checked
before any import, signed pickle mode with key rotation, size limits, and a fuzz run of
hostile messages. Rejected jobs never run and leave no result; the worker logs why and
goes on (after the dead-letter merge they land in the dead-letter stream instead)."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.js.errors import KeyNotFoundError

from naqd import Client, SyncClient
from naqd.client.deadletters import DeadLetters
from naqd.client.errors import PayloadTooLarge
from naqd.config import load_config
from naqd.protocol.envelope import Envelope, encode_job
from naqd.protocol.names import (
    DLQ_STREAM,
    HDR_ENCODING,
    HDR_SIGNATURE,
    RESULTS_BUCKET,
    dlq_subject,
    job_subject,
    result_subject,
)
from naqd.protocol.signing import Keyring, SignatureError
from naqd.worker.admission import AdmissionPolicy, JobRejected, admit
from tests.conftest import Daemon
from tests.natsserver import NatsServer
from tests.schemas import assert_valid

NEW_KEY = "new-key-" + "a" * 40
OLD_KEY = "old-key-" + "b" * 40
REJECTED = "dead-lettered (unreadable)"


class Stack:
    def __init__(self, server: NatsServer, tmp: Path, json_daemon: Daemon, pickle_daemon: Daemon):
        self.server = server
        self.tmp = tmp
        self.json_daemon = json_daemon
        self.pickle_daemon = pickle_daemon
        self.import_marker = tmp / "unlisted-imported"

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("payloads")
    server = NatsServer(tmp / "nats").start()
    (tmp / "keys").write_text(f"{NEW_KEY}\n{OLD_KEY}\n")
    common = f'nats: {{servers: ["{server.url}"]}}\nshutdown: {{grace_period: 5s}}\n'
    # A short lease: a new leader releases its first dependents one renew interval in.
    common += "scheduler: {leader_election: {lease: 2s, renew_every: 0.5s}}\n"
    (tmp / "json.yaml").write_text(
        common
        + "tasks: {imports: [tests.tasks], max_payload: 4KiB}\n"
        + "queues: {default: {concurrency: 4, retries: 0}}\n"
    )
    (tmp / "pickle.yaml").write_text(
        common
        + "tasks: {imports: [tests.tasks], serializer: pickle, "
        + f"signing_key_file: {tmp / 'keys'}}}\n"
        + "queues: {pickled: {concurrency: 4, retries: 0}}\n"
    )
    marker = tmp / "unlisted-imported"
    saved = os.environ.get("NAQD_TEST_IMPORT_MARKER")
    os.environ["NAQD_TEST_IMPORT_MARKER"] = str(marker)
    try:
        json_daemon = Daemon(tmp / "json.yaml", tmp / "json.log").start()
        pickle_daemon = Daemon(tmp / "pickle.yaml", tmp / "pickle.log").start()
    finally:
        if saved is None:
            os.environ.pop("NAQD_TEST_IMPORT_MARKER")
        else:
            os.environ["NAQD_TEST_IMPORT_MARKER"] = saved
    try:  # a set-up that fails must not leave its processes to a later test's teardown
        json_daemon.wait_for_log("ready: queue")
        pickle_daemon.wait_for_log("ready: queue")
        yield Stack(server, tmp, json_daemon, pickle_daemon)
    finally:
        json_daemon.stop()
        pickle_daemon.stop()
        server.stop()


class WritesFileWhenUnpickled:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


async def publish_raw(client: Client, queue: str, data: bytes, headers: dict[str, str]) -> None:
    await client._js.publish(job_subject(queue), data, headers=headers)


async def assert_dead_lettered(client: Client, job_id: str, reason: str) -> None:
    """Refused unread: a failed record for its producer, and a dead letter that says why."""
    rec = await client.wait(job_id, timeout=20)
    assert rec.status == "failed" and rec.error is not None
    assert rec.error.type == "JobRejected" and reason in rec.error.message
    entry = await DeadLetters(client.nc).get(job_id)
    assert entry is not None and entry.reason == "unreadable" and reason in entry.error.message
    # What the worker wrote matches the published schemas (docs/schemas/).
    assert_valid("result", (await (await client._js.key_value(RESULTS_BUCKET)).get(job_id)).value)
    raw = await client._js.get_last_msg(DLQ_STREAM, dlq_subject(entry.queue, job_id))
    assert_valid("deadletter", raw.data)


async def test_json_mode_never_unpickles(stack: Stack, tmp_path: Path) -> None:
    trap = tmp_path / "unpickled"
    payload = pickle.dumps(WritesFileWhenUnpickled(trap))
    before = stack.json_daemon.log.count(REJECTED)
    async with Client(stack.url) as client:
        await publish_raw(client, "default", payload, {HDR_ENCODING: "pickle"})
        await publish_raw(client, "default", payload, {})  # unlabelled: read as JSON
        # A job enqueued after both runs, so the worker went on.
        assert await (await client.enqueue("tests.tasks:add", 1, 1)).result(timeout=20) == 2
    stack.json_daemon.wait_for_log(REJECTED, count=before + 2)
    assert "pickle refused: tasks.serializer is json" in stack.json_daemon.log
    assert not trap.exists()


async def test_task_outside_the_allow_list_is_never_imported(stack: Stack, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    async with Client(stack.url) as client:
        job = await client.enqueue("tests.unlisted_tasks:boom", str(ran))
        stack.json_daemon.wait_for_log("task not allowed: tests.unlisted_tasks:boom")
        await assert_dead_lettered(client, job.id, "task not allowed")
    assert not ran.exists()
    assert not stack.import_marker.exists()


async def test_names_reached_through_an_allowed_module_fail_without_running(
    stack: Stack,
) -> None:
    async with Client(stack.url) as client:
        job = await client.enqueue("tests.tasks:os.system", "touch /tmp/naqd-pwned")
        rec = await client.wait(job.id, timeout=20)
    assert rec.status == "failed" and rec.error is not None
    assert rec.error.type == "TaskNotFound" and "goes through module 'os'" in rec.error.message


async def test_oversized_payloads_refused_at_enqueue_and_at_the_worker(stack: Stack) -> None:
    config = load_config(stack.tmp / "json.yaml", env={})
    async with Client.from_config(config) as client:
        with pytest.raises(PayloadTooLarge):
            await client.enqueue("tests.tasks:add", "x" * 5000, "y")
        # A producer that ignores the limit: the worker refuses the job unread.
        big = encode_job(Envelope(id="big", task="tests.tasks:add", queue="default",
                                  args=("x" * 5000, "y")))  # fmt: skip
        await publish_raw(client, "default", big, {"Nats-Msg-Id": "big"})
        stack.json_daemon.wait_for_log("too large: payload is")
        await assert_dead_lettered(client, "big", "too large")


async def test_signed_pickles_run_and_return_pickled_results(stack: Stack) -> None:
    async with Client(stack.url, serializer="pickle", signing_key=NEW_KEY) as client:
        job = await client.enqueue("tests.tasks:echo_kwargs", queue="pickled", s={1, 2})
        assert await job.result(timeout=20) == {"s": {1, 2}}
    # A JSON client never unpickles the result; a client with another key refuses it.
    async with Client(stack.url) as json_client:
        with pytest.raises(ValueError, match="result is pickled"):
            await json_client.record(job.id)
    async with Client(stack.url, serializer="pickle", signing_key="q" * 40) as other:
        with pytest.raises(SignatureError, match="unknown key id"):
            await other.record(job.id)


async def test_forged_pickled_result_is_never_loaded(stack: Stack, tmp_path: Path) -> None:
    """Whoever can write the results bucket but has no key cannot run code on producers."""
    import base64
    import json

    trap = tmp_path / "unpickled"
    forged = {
        "id": "forged", "status": "succeeded", "encoding": "pickle",
        "result": base64.b64encode(pickle.dumps(WritesFileWhenUnpickled(trap))).decode(),
    }  # fmt: skip
    async with Client(stack.url, serializer="pickle", signing_key=NEW_KEY) as client:
        await client._js.publish(result_subject("forged"), json.dumps(forged).encode())
        with pytest.raises(SignatureError, match="not signed"):
            await client.record("forged")
    assert not trap.exists()


async def test_rotation_old_key_accepted_unknown_key_and_unsigned_refused(
    stack: Stack, tmp_path: Path
) -> None:
    # A producer still signing with the old key (and accepting the new one, which the
    # workers now sign results with) keeps working during the rotation.
    ring = Keyring.from_keys(OLD_KEY, [NEW_KEY])
    async with Client(stack.url, serializer="pickle", signing_key=ring) as old:
        job = await old.enqueue("tests.tasks:add", 2, 2, queue="pickled")
        assert await job.result(timeout=20) == 4
    before = stack.pickle_daemon.log.count(REJECTED)
    async with Client(stack.url, serializer="pickle", signing_key="z" * 40) as stranger:
        bad = await stranger.enqueue("tests.tasks:count_run", str(tmp_path), queue="pickled")
        # Unsigned, and signed JSON relabelled as pickle.
        env = Envelope(id="u1", task="tests.tasks:count_run", queue="pickled",
                       args=(str(tmp_path),))  # fmt: skip
        await publish_raw(stranger, "pickled", encode_job(env, "pickle"), {HDR_ENCODING: "pickle"})
        data = encode_job(env)
        sig = Keyring.from_keys(NEW_KEY).sign(data, "json")
        await publish_raw(stranger, "pickled", data, {HDR_ENCODING: "pickle", HDR_SIGNATURE: sig})
        stack.pickle_daemon.wait_for_log(REJECTED, count=before + 3)
        await assert_dead_lettered(stranger, bad.id, "unknown key id")
    log = stack.pickle_daemon.log
    assert "unknown key id" in log and "job is not signed" in log
    assert not (tmp_path / "runs").exists()


# --- fuzz: hostile messages at a live worker ---------------------------------------------

printable = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40)
headers_st = st.dictionaries(
    st.sampled_from([HDR_ENCODING, HDR_SIGNATURE, "X-Junk"]),
    st.one_of(st.sampled_from(["json", "pickle"]), printable),
    max_size=3,
)
good = encode_job(Envelope(id="g", task="tests.tasks:add", queue="default", args=(1, 2)))


def mutate(data: bytes, cuts: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    for pos, patch in cuts:
        pos %= len(out) + 1
        out[pos : pos + len(patch)] = patch
    return bytes(out)


payloads = st.one_of(
    st.binary(max_size=5000),
    st.lists(st.tuples(st.integers(0, 120), st.binary(min_size=1, max_size=6)), max_size=4).map(
        lambda cuts: mutate(good, cuts)
    ),
)


def test_fuzzed_messages_never_crash_or_stall_a_live_worker(stack: Stack) -> None:
    config = load_config(stack.tmp / "json.yaml", env={})
    policy = AdmissionPolicy.from_config(config, "default")
    sent: list[tuple[bytes, dict[str, str]]] = []
    before = stack.json_daemon.log.count(REJECTED)

    with SyncClient(stack.url) as client:
        js = client._client._js

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=payloads, headers=headers_st)
        def publish(data: bytes, headers: dict[str, str]) -> None:
            client._run(js.publish(job_subject("default"), data, headers=headers or None))
            sent.append((data, headers))

        publish()
        expected = 0
        for data, headers in sent:
            try:
                admit(data, headers, policy)
            except JobRejected:
                expected += 1
        # Every hostile message was refused with a reason; the worker still serves.
        assert expected >= len(sent) // 2  # mostly garbage; some mutations stay valid
        stack.json_daemon.wait_for_log(REJECTED, count=before + expected, timeout=30)
        assert client.enqueue("tests.tasks:add", 20, 22).result(timeout=20) == 42
    log = stack.json_daemon.log
    assert "handling failed" not in log and "Traceback" not in log
    assert "restarting in" not in log  # the worker process never died


async def test_signed_jobs_stay_signed_when_delayed_or_waiting_for_a_parent(stack: Stack) -> None:
    """The server copies a holder's headers onto the job it fires, and the dependency
    resolver republishes the held job: both must carry the producer's signature."""
    async with Client(stack.url, serializer="pickle", signing_key=NEW_KEY) as client:
        delayed = await client.enqueue_in(1, "tests.tasks:add", 2, 3, queue="pickled")
        parent = await client.enqueue("tests.tasks:add", 1, 1, queue="pickled")
        child = await client.enqueue("tests.tasks:add", 4, 4, queue="pickled", depends_on=[parent])
        assert await delayed.result(timeout=30) == 5
        assert await child.result(timeout=30) == 8


# --- one behaviour for every producer (issue 14) -------------------------------------------


async def test_refused_job_is_filed_under_its_envelope_id_without_a_header(stack: Stack) -> None:
    async with Client(stack.url) as client:
        env = {"id": "refused-1", "task": "tests.unlisted_tasks:boom", "queue": "default"}
        await publish_raw(client, "default", json.dumps(env).encode(), {})
        await assert_dead_lettered(client, "refused-1", "task not allowed")
        rec = await client.record("refused-1")
        entry = await DeadLetters(client.nc).get("refused-1")
    assert rec is not None and rec.task == "tests.unlisted_tasks:boom"
    assert entry is not None and entry.task == "tests.unlisted_tasks:boom"


async def test_malformed_but_readable_envelope_names_its_job(stack: Stack) -> None:
    async with Client(stack.url) as client:
        env = {"id": "malformed-1", "task": "tests.tasks:add", "queue": "default", "args": "1,2"}
        await publish_raw(client, "default", json.dumps(env).encode(), {})
        await assert_dead_lettered(client, "malformed-1", "args must be a list")
        rec = await client.record("malformed-1")
    assert rec is not None and rec.task == "tests.tasks:add" and rec.queue == "default"


async def test_msg_id_differing_from_the_envelope_id_is_refused(stack: Stack) -> None:
    async with Client(stack.url) as client:
        env = {"id": "envelope-id", "task": "tests.tasks:add", "queue": "default", "args": [1, 2]}
        await publish_raw(client, "default", json.dumps(env).encode(), {"Nats-Msg-Id": "hdr-id"})
        await assert_dead_lettered(client, "envelope-id", "id mismatch")
        assert await client.record("hdr-id") is None


async def test_ids_over_200_characters_get_no_record(stack: Stack) -> None:
    long_id = "x" * 201
    async with Client(stack.url) as client:
        env = {"id": long_id, "task": "tests.tasks:add", "queue": "default", "args": [1, 2]}
        await publish_raw(client, "default", json.dumps(env).encode(), {"Nats-Msg-Id": long_id})
        dl = DeadLetters(client.nc)
        marker = f'"id": "{long_id}"'.encode()  # as json.dumps wrote it

        async def entry() -> object:
            for e in await dl.list("default"):
                if marker in e.payload:
                    return e
            return None

        deadline = asyncio.get_running_loop().time() + 20
        while (found := await entry()) is None:
            assert asyncio.get_running_loop().time() < deadline, "no dead letter"
            await asyncio.sleep(0.1)
        assert found.id.startswith("seq-") and found.task == "tests.tasks:add"
        kv = await client._js.key_value("naqd_results")
        with pytest.raises(KeyNotFoundError):
            await kv.get(long_id)


async def test_per_job_retry_on_is_read_in_a_short_envelope(stack: Stack) -> None:
    async with Client(stack.url) as client:
        env = {
            "id": "short-retry-on",
            "task": "tests.tasks:fail",
            "queue": "default",
            "args": ["boom"],
            "retries": 2,
            "retry_on": ["KeyError"],  # fail() raises ValueError: never retried
        }
        await publish_raw(client, "default", json.dumps(env).encode(), {})
        rec = await client.wait("short-retry-on", timeout=20)
    assert rec.status == "failed" and rec.attempts == 1
    assert rec.error is not None and rec.error.type == "ValueError"
