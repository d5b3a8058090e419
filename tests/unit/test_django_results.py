"""naqd records as Django TaskResults (naqd/contrib/django/results.py): pure mapping."""

from __future__ import annotations

import pytest

pytest.importorskip("django")

from naqd.contrib.django.results import (
    STATUS,
    django_task_path,
    exception_path,
    naqd_task_name,
)
from naqd.protocol.envelope import ErrorInfo


@pytest.mark.parametrize(
    ("error", "path"),
    [
        (ErrorInfo("ValueError", "x", "Traceback ...\nValueError: x\n"), "builtins.ValueError"),
        (
            ErrorInfo("PaymentDeclined", "no", "Traceback ...\nshop.tasks.PaymentDeclined: no"),
            "shop.tasks.PaymentDeclined",
        ),
        (ErrorInfo("Weird", "no traceback"), "builtins.Weird"),
        # A last line that is not the exception's: only the class name is known.
        (ErrorInfo("KeyError", "k", "Traceback ...\n  during handling"), "builtins.KeyError"),
    ],
)
def test_exception_path(error: ErrorInfo, path: str) -> None:
    assert exception_path(error) == path


def test_task_names_round_trip() -> None:
    name = naqd_task_name("shop.tasks.mark_paid")
    assert name == "naqd.contrib.django.worker:shop.tasks.mark_paid"
    assert django_task_path(name) == "shop.tasks.mark_paid"
    assert django_task_path("shop.tasks:mark_paid") is None


def test_every_naqd_status_has_a_django_status() -> None:
    from naqd.protocol.envelope import FINAL_STATUSES

    assert set(FINAL_STATUSES) | {"queued", "running", "retrying"} == set(STATUS)
