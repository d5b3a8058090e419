"""A small Django project for tests/process/test_contrib_django.py: sqlite (a file,
shared by the test's Django process and the naqd worker), two naqd-backed task
backends. The database file and NATS come from the environment."""

from __future__ import annotations

import os

SECRET_KEY = "naqd-tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "tests.django_project.shop",
]
try:  # Django < 6.0: the framework is the django-tasks backport, an app of its own
    import django.tasks  # noqa: F401
except ImportError:
    INSTALLED_APPS.insert(0, "django_tasks")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("NAQD_DJANGO_DB", ":memory:"),
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

_NATS = {"SERVERS": os.environ.get("NAQD_SERVERS", "nats://127.0.0.1:4222")}
TASKS = {
    # The default: enqueued after the transaction commits.
    "default": {
        "BACKEND": "naqd.contrib.django.NaqdBackend",
        "QUEUES": ["default", "retrying"],
        "OPTIONS": _NATS,
    },
    # Published at once, even inside a transaction (what on-commit prevents).
    "at_once": {
        "BACKEND": "naqd.contrib.django.NaqdBackend",
        "QUEUES": ["default"],
        "OPTIONS": {**_NATS, "ENQUEUE_ON_COMMIT": False},
    },
}
