"""naqd for Django (docs/integrations.md#django): `NaqdBackend` for Django's task
framework (`django.tasks`; the django-tasks backport before Django 6.0), and
`naqd.contrib.django.worker` for the naqd workers that run those tasks. Needs the
`django` extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from naqd.contrib.django.backend import NaqdBackend

__all__ = ["NaqdBackend"]


def __getattr__(name: str) -> Any:
    # Lazy: Django imports the backend only once settings are ready.
    if name == "NaqdBackend":
        from naqd.contrib.django.backend import NaqdBackend

        return NaqdBackend
    raise AttributeError(f"module 'naqd.contrib.django' has no attribute {name!r}")
