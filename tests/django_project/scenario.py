"""The Django side of tests/process/test_contrib_django.py, run as its own process
(`python -m tests.django_project.scenario`, DJANGO_SETTINGS_MODULE set): enqueues
through Django's task API while a real naqd worker runs the jobs, and prints what it
observed as one JSON object."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from naqd.contrib.django import backend as naqd_backend  # noqa: E402
from tests.django_project.shop import tasks  # noqa: E402
from tests.django_project.shop.models import Order  # noqa: E402


class Rollback(Exception):
    pass


def finished(result: Any, timeout: float = 20.0) -> Any:
    """Refresh (Django's result API, from naqd's records) until the task finished."""
    deadline = time.monotonic() + timeout
    while True:
        result.refresh()
        if result.is_finished:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{result.id} still {result.status} after {timeout}s")
        time.sleep(0.05)


def main() -> dict[str, Any]:
    call_command("migrate", run_syncdb=True, verbosity=0)
    seen: dict[str, Any] = {}

    # On commit (the default): nothing is published until the transaction commits, so
    # the worker finds the order the task is about.
    with transaction.atomic():
        order = Order.objects.create(total=5)
        paid = tasks.mark_paid.enqueue(order.id)
        seen["in_transaction_record"] = repr(paid.task.get_backend().client().record(paid.id))
    finished(paid)
    order.refresh_from_db()
    seen["paid"] = [paid.status, paid.return_value, order.paid]
    seen["paid_id"] = paid.id

    # Published at once (ENQUEUE_ON_COMMIT False): the worker runs it while the row is
    # still uncommitted and cannot find it.
    with transaction.atomic():
        early_order = Order.objects.create(total=6)
        early = tasks.mark_paid.using(backend="at_once").enqueue(early_order.id)
        finished(early)
    seen["early"] = [early.status, [e.exception_class_path for e in early.errors]]

    # Rolled back: never published.
    try:
        with transaction.atomic():
            ghost = tasks.add.enqueue(1, 1)
            raise Rollback
    except Rollback:
        pass
    marker = finished(tasks.add.enqueue(2, 2))
    seen["rolled_back"] = [marker.return_value, repr(naqd_backend.NaqdBackend.client(
        ghost.task.get_backend()).record(ghost.id))]  # fmt: skip

    # Results read by another process (nothing remembered here): the task, its status,
    # its return value, from naqd's record.
    naqd_backend._results.clear()
    again = tasks.mark_paid.get_result(paid.id)
    seen["elsewhere"] = [again.status, again.return_value, again.task.name, again.attempts]

    # A keyword argument named `queue` is the task's, not naqd's option.
    seen["label"] = finished(tasks.label.enqueue(7, queue="express")).return_value

    # Retried by naqd (queue "retrying": retries 2); context.attempt is naqd's attempt.
    flaky = finished(tasks.flaky.enqueue(succeed_on=2))
    seen["flaky_id"] = flaky.id
    seen["flaky"] = [flaky.status, flaky.return_value, flaky.attempts,
                     [e.exception_class_path for e in flaky.errors]]  # fmt: skip

    # A failure: FAILED, with the exception's class path and traceback.
    failed = finished(tasks.declined.enqueue(9))
    error = failed.errors[-1]
    seen["declined"] = [failed.status, error.exception_class_path,
                        error.exception_class.__name__, "order 9" in error.traceback]  # fmt: skip

    seen["async"] = finished(tasks.double.enqueue(21)).return_value

    # run_after: a delayed job held by the server.
    at = timezone.now() + timedelta(seconds=1)
    later = finished(tasks.add.using(run_after=at).enqueue(3, 4))
    seen["later"] = [later.return_value, later.started_at >= at]
    return seen


if __name__ == "__main__":
    print(json.dumps(main()))
