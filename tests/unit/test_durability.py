"""Which servers can lose acknowledged jobs on a power cut: pure judgements."""

from __future__ import annotations

from typing import Any

import pytest

from naqd.models import EmbeddedNatsConfig, NatsConfig
from naqd.observe.durability import durability_warnings, judge_varz

URL = "http://n1:8222"


def varz(**config: Any) -> dict[str, Any]:
    return {"server_name": "n1", "jetstream": {"config": config}}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (varz(sync_always=True, sync_interval=120_000_000_000), ""),
        (varz(sync_interval=120_000_000_000), "every 2m"),
        (varz(sync_always=False, sync_interval=1_000_000_000), "every 1s"),
        (varz(), "default interval (2m)"),
        ({"server_name": "n1"}, "no JetStream"),
    ],
)
def test_a_server_that_acknowledges_before_fsync_is_named(data: dict, says: str) -> None:
    warning = judge_varz(URL, data)
    assert (warning == "") is (says == "")
    assert says in warning


def test_embedded_server_warns_only_off_always() -> None:
    assert durability_warnings(NatsConfig()) == []
    fast = NatsConfig(embedded=EmbeddedNatsConfig(sync=1.0))
    (warning,) = durability_warnings(fast)
    assert "last 1s" in warning


def test_external_servers_without_monitoring_give_no_warning() -> None:
    """naqd cannot see their setting; docs/operations.md says what to set."""
    assert durability_warnings(NatsConfig(servers=("nats://n1:4222",))) == []


def test_each_monitoring_url_is_judged_and_an_unreachable_one_is_reported() -> None:
    answers = {URL: varz(sync_always=True), "http://n2:8222": varz(sync_interval=10**9)}

    def fetch(url: str) -> dict[str, Any]:
        if url not in answers:
            raise OSError("connection refused")
        return answers[url]

    nats = NatsConfig(servers=("nats://n1:4222",), monitoring=(*answers, "http://n3:8222"))
    warnings = durability_warnings(nats, fetch)
    assert len(warnings) == 2
    assert "every 1s" in warnings[0]
    assert "http://n3:8222" in warnings[1] and "connection refused" in warnings[1]
