"""Whether the server answering on the embedded port is ours: pure checks."""

from __future__ import annotations

import pytest

from naqd.supervisor.embedded import child_env, config_text, judge_info

OURS = "naqd-embedded-4222-0123456789ab"


@pytest.mark.parametrize(
    ("info", "ours"),
    [
        ({"server_name": OURS, "server_id": "NABC", "jetstream": True}, True),
        ({"server_name": "naqd-embedded-4222", "server_id": "NX", "jetstream": True}, False),
        ({"server_name": "prod-nats-1", "server_id": "NX", "jetstream": True}, False),
        ({"server_id": "NX", "jetstream": True}, False),  # no name at all
        ({"server_name": OURS, "server_id": "NABC"}, False),  # ours, but no JetStream
    ],
)
def test_only_our_server_name_with_jetstream_is_ours(info: dict, ours: bool) -> None:
    why = judge_info(info, OURS)
    assert (why == "") is ours
    if not ours:
        assert why  # says what answered instead


def test_systemd_variables_stay_with_the_supervisor() -> None:
    env = {"PATH": "/bin", "NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "2"}
    assert child_env(env) == {"PATH": "/bin"}


@pytest.mark.parametrize(
    ("sync", "max_payload", "expected"),
    [
        ("always", None, "jetstream { sync_interval: always }\n"),
        (0.2, None, "jetstream { sync_interval: 200ms }\n"),
        (120.0, None, "jetstream { sync_interval: 120000ms }\n"),
        ("always", 1 << 20, "jetstream { sync_interval: always }\nmax_payload: 2097152\n"),
    ],
)
def test_the_server_config_carries_the_sync_policy(
    sync: str | float, max_payload: int | None, expected: str
) -> None:
    assert config_text(max_payload, sync) == expected
