"""A Django test of code that enqueues through naqd (docs/testing.md#a-django-test), run
by Django's own test runner: `python -m django test tests.django_project.shop
--settings=tests.django_project.settings` (tests/process/test_contrib_django.py does).

Django's TestCase never commits, so a task enqueued on commit is published only when
the test runs the captured on-commit callbacks. The job goes to a real throwaway
server; the task's body runs here, in the test's transaction, by calling it directly."""

from __future__ import annotations

from typing import Any

from django.test import TestCase, override_settings

from naqd.client.sync import SyncClient
from naqd.testing import NatsServer, prepare_sync
from tests.django_project.shop.models import Order
from tests.django_project.shop.tasks import mark_paid


class EnqueueOnCommitTests(TestCase):
    server: NatsServer
    settings_override: Any

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.server = NatsServer().start()
        # Streams, buckets and queue consumers before any worker exists.
        prepare_sync(cls.server.url, queues={"default": {}, "retrying": {}})
        cls.settings_override = override_settings(
            TASKS={
                "default": {
                    "BACKEND": "naqd.contrib.django.NaqdBackend",
                    "QUEUES": ["default", "retrying"],
                    "OPTIONS": {"SERVERS": cls.server.url},
                }
            }
        )
        cls.settings_override.enable()

    @classmethod
    def tearDownClass(cls) -> None:
        from naqd.contrib.django.backend import close_clients

        cls.settings_override.disable()
        close_clients()
        cls.server.stop()
        super().tearDownClass()

    def waiting(self) -> int:
        with SyncClient(self.server.url) as client:
            return next(q.waiting for q in client.queues() if q.name == "default")

    def test_a_job_is_published_when_the_transaction_commits(self) -> None:
        order = Order.objects.create(total=12)
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            result = mark_paid.enqueue(order.id)
        self.assertEqual(self.waiting(), 0)  # not before the commit
        for callback in callbacks:
            callback()  # what the commit does
        self.assertEqual(self.waiting(), 1)
        self.assertEqual(result.status, "READY")

        # The task's body, run directly inside this test's transaction.
        self.assertEqual(mark_paid.call(order.id), f"paid {order.id}")
        order.refresh_from_db()
        self.assertTrue(order.paid)
