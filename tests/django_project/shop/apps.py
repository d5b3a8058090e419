from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "tests.django_project.shop"
    label = "shop"

    def ready(self) -> None:
        """With NAQD_DJANGO_SIGNALS set, log Django's task signals to that file, so the
        test sees what the naqd worker process sent."""
        path = os.environ.get("NAQD_DJANGO_SIGNALS")
        if not path:
            return
        try:
            from django.tasks.signals import task_enqueued, task_finished, task_started
        except ImportError:
            from django_tasks.signals import task_enqueued, task_finished, task_started

        def log(name: str) -> Any:
            def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
                with Path(path).open("a") as f:
                    f.write(f"{name} {task_result.id} {task_result.status}\n")

            return receiver

        self._receivers = [log(n) for n in ("enqueued", "started", "finished")]
        for signal, receiver in zip(
            (task_enqueued, task_started, task_finished), self._receivers, strict=True
        ):
            signal.connect(receiver, weak=False)
