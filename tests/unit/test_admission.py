"""Admission checks, signatures and the task allow-list: pure, no NATS."""

from __future__ import annotations

import json
import pickle
import sys
import textwrap

import cloudpickle
import pytest

from naqd.client import Client
from naqd.client.errors import PayloadTooLarge
from naqd.config import ConfigError, parse_config
from naqd.protocol.envelope import Envelope, EnvelopeError, encode_job
from naqd.protocol.names import HDR_ENCODING, HDR_MSG_ID, HDR_SIGNATURE, requeue_msg_id
from naqd.protocol.signing import Keyring, SignatureError, key_id, read_key_file
from naqd.worker.admission import (
    AdmissionPolicy,
    JobRejected,
    TaskAllowList,
    admit,
    refused_job,
)
from naqd.worker.tasks import TaskNotFound, resolve_task

KEY = "k" * 40
OLD_KEY = "o" * 40


def job(task: str = "tests.tasks:add", queue: str = "default", **kw: object) -> Envelope:
    return Envelope(id="j1", task=task, queue=queue, args=(1, 2), **kw)  # type: ignore[arg-type]


def policy(**kw: object) -> AdmissionPolicy:
    kw.setdefault("allowed", TaskAllowList.build(["tests.tasks"], []))
    return AdmissionPolicy(**kw)  # type: ignore[arg-type]


def signed(env: Envelope, key: str = KEY, encoding: str = "json") -> tuple[bytes, dict[str, str]]:
    data = encode_job(env, encoding)  # type: ignore[arg-type]
    headers = {HDR_SIGNATURE: Keyring.from_keys(key).sign(data, encoding)}
    if encoding != "json":
        headers[HDR_ENCODING] = encoding
    return data, headers


# --- signatures -----------------------------------------------------------------------


def test_signature_round_trip_and_rotation() -> None:
    payload = b'{"x":1}'
    old = Keyring.from_keys(OLD_KEY)
    ring = Keyring.from_keys(KEY, [OLD_KEY])
    assert ring.verify(payload, ring.sign(payload)) == key_id(KEY)
    # A job signed with the old key is still accepted while it is listed.
    assert ring.verify(payload, old.sign(payload)) == key_id(OLD_KEY)
    # The new key alone no longer accepts it.
    with pytest.raises(SignatureError, match="unknown key id"):
        Keyring.from_keys(KEY).verify(payload, old.sign(payload))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "not signed"),
        ("", "not signed"),
        ("nocolon", "malformed"),
        (f"{key_id(KEY)}:abc", "malformed"),
        (f"{key_id(KEY)}:{'0' * 64}", "bad signature"),
    ],
)
def test_bad_signatures(header: str | None, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        Keyring.from_keys(KEY).verify(b"payload", header)


def test_signature_covers_every_byte_and_the_encoding() -> None:
    ring = Keyring.from_keys(KEY)
    header = ring.sign(b'{"a":1}', "json")
    with pytest.raises(SignatureError):
        ring.verify(b'{"a":2}', header, "json")
    with pytest.raises(SignatureError):
        ring.verify(b'{"a":1}', header, "pickle")  # relabelled: refused


def test_key_id_does_not_contain_the_key() -> None:
    assert KEY not in repr(Keyring.from_keys(KEY))
    assert key_id(KEY) != key_id(OLD_KEY) and len(key_id(KEY)) == 16


def test_key_file_first_line_signs_others_accepted(tmp_path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2026-01\n{KEY}\n\n{OLD_KEY}\n")
    assert read_key_file(str(path)) == [KEY, OLD_KEY]
    cfg = parse(f"tasks: {{serializer: pickle, signing_key_file: {path}}}")
    ring = AdmissionPolicy.from_config(cfg).keyring
    assert ring is not None and ring.signing_id == key_id(KEY) and key_id(OLD_KEY) in ring.keys


# --- admission ------------------------------------------------------------------------


def test_plain_json_job_is_admitted() -> None:
    env = job()
    assert admit(encode_job(env), None, policy()) == env


def test_too_large_is_rejected_before_decoding() -> None:
    data = b"x" * 2000  # not even JSON: size is checked first
    with pytest.raises(JobRejected, match="too large: payload is 2000 bytes, the limit is 1024"):
        admit(data, None, policy(max_payload=1024))


def test_pickle_refused_in_json_mode_and_never_loaded() -> None:
    class Boom:
        def __reduce__(self):  # would run on unpickling
            return (sys.exit, ("unpickled!",))

    data = pickle.dumps(Boom())
    with pytest.raises(JobRejected) as info:
        admit(data, {HDR_ENCODING: "pickle"}, policy())
    assert info.value.reason == "pickle refused"
    assert isinstance(info.value, EnvelopeError)  # so the runner terms it


def test_pickle_mode_requires_a_valid_signature() -> None:
    ring = Keyring.from_keys(KEY)
    p = policy(serializer="pickle", keyring=ring)
    env = job(kwargs={"s": {1, 2}})
    data, headers = signed(env, encoding="pickle")
    assert admit(data, headers, p).kwargs == {"s": {1, 2}}
    with pytest.raises(JobRejected, match="bad signature: job is not signed"):
        admit(data, {HDR_ENCODING: "pickle"}, p)
    bad_data, bad_headers = signed(env, key="x" * 40, encoding="pickle")
    with pytest.raises(JobRejected, match="unknown key id"):
        admit(bad_data, bad_headers, p)
    tampered = data.replace(b"add", b"fail")
    with pytest.raises(JobRejected, match="bad signature"):
        admit(tampered, headers, p)


def test_pickle_mode_without_key_refuses_pickles() -> None:
    data, headers = signed(job(), encoding="pickle")
    with pytest.raises(JobRejected, match="no signing key"):
        admit(data, headers, policy(serializer="pickle"))


def test_sign_json_requires_signatures_on_json_jobs() -> None:
    ring = Keyring.from_keys(KEY)
    env = job()
    data, headers = signed(env)
    assert admit(data, headers, policy(keyring=ring, require_signed_json=True)) == env
    with pytest.raises(JobRejected, match="not signed"):
        admit(data, None, policy(keyring=ring, require_signed_json=True))
    # Without sign_json an unsigned JSON job passes, but a wrong signature never does.
    assert admit(data, None, policy(keyring=ring)) == env
    with pytest.raises(JobRejected, match="bad signature"):
        admit(data, {HDR_SIGNATURE: f"{key_id(KEY)}:{'f' * 64}"}, policy(keyring=ring))


def test_unknown_encoding_and_wrong_queue() -> None:
    with pytest.raises(JobRejected, match="bad encoding"):
        admit(encode_job(job()), {HDR_ENCODING: "yaml"}, policy())
    with pytest.raises(JobRejected, match="wrong queue: job for queue 'other'"):
        admit(encode_job(job(queue="other")), None, policy(queue="default"))


def test_malformed_payloads_are_rejected() -> None:
    for data in (b"", b"\xff\xfe", b"[]", b'{"task": 1}', json.dumps({"v": 99}).encode()):
        with pytest.raises(JobRejected) as info:
            admit(data, None, policy())
        assert info.value.reason == "malformed"


# --- allow-list -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imports", "allow", "task", "ok"),
    [
        (["myapp.tasks"], [], "myapp.tasks:send", True),
        (["myapp.tasks"], [], "myapp.tasks:Mailer.send", True),
        (["myapp.tasks"], [], "myapp.tasksx:send", False),
        (["myapp.tasks"], [], "myapp.other:send", False),
        (["myapp.tasks"], [], "myapp.tasks:_private", False),
        (["myapp.tasks"], [], "myapp.tasks:__init__", False),
        (["myapp.tasks"], [], "myapp.tasks:Mailer.__class__", False),
        ([], [], "myapp.tasks:send", False),  # nothing configured: nothing runs
        ([], ["myapp.*"], "myapp.reports:nightly", True),
        ([], ["myapp.*"], "myappx.reports:nightly", False),
        ([], ["myapp.tasks:send_*"], "myapp.tasks:send_mail", True),
        ([], ["myapp.tasks:send_*"], "myapp.tasks:delete_all", False),
        ([], ["os"], "os:system", True),  # explicit, the operator's choice
    ],
)
def test_allow_list(imports: list[str], allow: list[str], task: str, ok: bool) -> None:
    assert TaskAllowList.build(imports, allow).allows(task) is ok


def test_disallowed_task_is_rejected_without_importing_it() -> None:
    module = "tests.never_imported_module"
    env = job(task=f"{module}:boom")
    with pytest.raises(JobRejected) as info:
        admit(encode_job(env), None, policy())
    assert info.value.reason == "task not allowed"
    assert module not in sys.modules


def test_resolve_task_refuses_what_a_task_module_merely_imported() -> None:
    # tests.tasks imports os and time: neither becomes a task through it.
    with pytest.raises(TaskNotFound, match="goes through module 'os'"):
        resolve_task("tests.tasks:os.system")
    with pytest.raises(TaskNotFound, match="defined in 'pathlib'"):
        resolve_task("tests.tasks:Path")
    with pytest.raises(TaskNotFound, match="private"):
        resolve_task("tests.tasks:_wait_for")
    assert resolve_task("tests.tasks:add")(1, 2) == 3


# --- producer side --------------------------------------------------------------------


def test_client_signs_and_limits_size() -> None:
    client = Client(serializer="pickle", signing_key=KEY, max_payload=2048)
    _, payload, headers = client.build("tests.tasks:add", (1, 2), {})
    assert Keyring.from_keys(KEY).verify(payload, headers[HDR_SIGNATURE], "pickle")
    assert cloudpickle.loads(payload)["task"] == "tests.tasks:add"
    with pytest.raises(PayloadTooLarge, match="over the 2048-byte limit"):
        client.build("tests.tasks:add", ("x" * 4096,), {})


def test_client_refuses_pickle_without_key() -> None:
    with pytest.raises(ValueError, match="needs a signing_key"):
        Client(serializer="pickle")


def test_client_from_config_carries_keys_and_limits() -> None:
    cfg = parse(
        f"""
        tasks: {{serializer: pickle, signing_key: "${{K}}", accepted_keys: ["{OLD_KEY}"],
                 max_payload: 64KiB}}
        """,
        K=KEY,
    )
    client = Client.from_config(cfg)
    assert client.serializer == "pickle" and client.max_payload == 65536
    assert client.keyring is not None and client.keyring.signing_id == key_id(KEY)


# --- config ---------------------------------------------------------------------------


def parse(text: str, **env: str):
    return parse_config(textwrap.dedent(text), "naq.yaml", env=env)


def config_errors(text: str, **env: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, **env)
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tasks: {serializer: pickle}",
            "naq.yaml:1:21: tasks.serializer: pickle runs whatever code the payload names: "
            "it requires tasks.signing_key (e.g. ${NAQD_SIGNING_KEY}) or tasks.signing_key_file",
        ),
        (
            "tasks: {signing_key: short}",
            "naq.yaml:1:22: tasks.signing_key: expected a secret of at least 32 characters "
            '(generate one with: python -c "import secrets; print(secrets.token_hex(32))")',
        ),
        ("tasks: {sign_json: true}", "naq.yaml:1:20: tasks.sign_json: sign_json requires"),
        ("tasks: {max_payload: 12}", "naq.yaml:1:22: tasks.max_payload: expected a size of at"),
        ("tasks: {max_payload: 1 parsec}", "naq.yaml:1:22: tasks.max_payload: expected a size"),
        ("tasks: {allow: [my app]}", "naq.yaml:1:17: tasks.allow[0]: expected a task name"),
        ("nats: {user: bob}", "naq.yaml:1:8: nats.user: user needs password or password_file"),
        ("nats: {password: x}", "naq.yaml:1:8: nats.password: a password needs a user"),
        (
            "nats: {user: a, password: b, token: c}",
            "naq.yaml:1:30: nats.token: choose one way to authenticate, not user and token",
        ),
        (
            "nats: {creds_file: a, nkey_seed_file: b}",
            "naq.yaml:1:23: nats.nkey_seed_file: set either creds_file or nkey_seed_file",
        ),
        ("nats: {tls: {cert_file: a}}", "naq.yaml:1:14: nats.tls.cert_file: cert_file needs"),
        ("nats: {inbox_prefix: 'a.>'}", "naq.yaml:1:22: nats.inbox_prefix: expected a subject"),
    ],
)
def test_security_config_errors(text: str, expected: str) -> None:
    found = config_errors(text)
    assert any(line.startswith(expected) for line in found), found


def test_secret_errors_and_reprs_never_show_the_secret() -> None:
    found = config_errors("tasks: {signing_key: tooshort-secret}")
    assert "tooshort-secret" not in "\n".join(found)
    cfg = parse(
        """
        nats: {user: bob, password: "pw-visible?"}
        tasks: {serializer: pickle, signing_key: "${K}"}
        """,
        K=KEY,
    )
    assert "pw-visible?" not in repr(cfg) and KEY not in repr(cfg)
    assert cfg.nats.password == "pw-visible?"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1MiB", 1048576), ("512KiB", 524288), ("2MB", 2000000), (65536, 65536), ("64 KiB", 65536)],
)
def test_max_payload_sizes(value: object, expected: int) -> None:
    assert parse(f"tasks: {{max_payload: {value}}}").tasks.max_payload == expected


def test_defaults_are_safe() -> None:
    cfg = parse("")
    assert cfg.tasks.serializer == "json" and cfg.tasks.max_payload == 1024 * 1024
    assert cfg.tasks.allow == () and cfg.tasks.imports == ()
    assert not AdmissionPolicy.from_config(cfg).allowed.allows("anything:at_all")


def test_example_config_runs_no_pickle_and_listens_on_loopback_only() -> None:
    from pathlib import Path

    from naqd.config import load_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "config" / "naq.yaml", env={})
    assert cfg.tasks.serializer == "json"
    assert cfg.nats.embedded.listen.startswith("127.0.0.1:")
    assert cfg.metrics.listen.startswith("127.0.0.1:")


# --- ids of refused jobs (issue 14) -------------------------------------------------------


def test_msg_id_must_equal_the_envelope_id() -> None:
    data = encode_job(job())
    assert admit(data, {HDR_MSG_ID: "j1"}, policy()).id == "j1"
    assert admit(data, {HDR_MSG_ID: requeue_msg_id("j1", 7)}, policy()).id == "j1"
    for other in ("j2", "j1.requeue.x", "j1.requeue.", "j10", "hold.j1"):
        with pytest.raises(JobRejected) as info:
            admit(data, {HDR_MSG_ID: other}, policy())
        assert info.value.reason == "id mismatch"
        assert (info.value.job_id, info.value.task) == ("j1", "tests.tasks:add")


@pytest.mark.parametrize(
    ("data", "headers", "expected"),
    [
        # Readable envelope: filed under its id, with or without the header.
        (encode_job(job(task="tests.unlisted_tasks:x")), None, ("j1", "tests.unlisted_tasks:x")),
        (encode_job(job(queue="other")), {HDR_MSG_ID: "j1"}, ("j1", "tests.tasks:add")),
        (b'{"id":"j1","task":"m:f","queue":"default","args":"x"}', None, ("j1", "m:f")),
        (encode_job(job()), {HDR_MSG_ID: "other"}, ("j1", "tests.tasks:add")),
        # Unreadable: the header's id, when it is a valid one.
        (b"not json", {HDR_MSG_ID: "h1"}, ("h1", "")),
        (b"not json", {HDR_MSG_ID: "x" * 201}, (None, "")),
        (b"not json", None, (None, "")),
        (b'{"id":"' + b"x" * 201 + b'","task":"m:f","queue":"q"}', None, (None, "m:f")),
    ],
)
def test_refused_jobs_are_filed_under_their_envelope_id(
    data: bytes, headers: dict[str, str] | None, expected: tuple[str | None, str]
) -> None:
    with pytest.raises(JobRejected) as info:
        admit(data, headers, policy(queue="default"))
    assert refused_job(info.value, headers) == expected
