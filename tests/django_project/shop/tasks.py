"""Django tasks, written as for any django.tasks backend."""

from __future__ import annotations

try:
    from django.tasks import TaskContext, task
except ImportError:  # Django < 6.0: the django-tasks backport
    from django_tasks import TaskContext, task

from tests.django_project.shop.models import Order


class PaymentDeclined(Exception):
    pass


@task()
def mark_paid(order_id: int) -> str:
    order = Order.objects.get(id=order_id)  # DoesNotExist if not committed yet
    order.paid = True
    order.save(update_fields=["paid"])
    return f"paid {order_id}"


@task()
def label(order_id: int, queue: str) -> str:
    """A keyword argument named like an enqueue option reaches the task."""
    return f"{order_id} via {queue}"


@task(takes_context=True, queue_name="retrying")
def flaky(context: TaskContext, succeed_on: int) -> int:
    if context.attempt < succeed_on:
        raise ConnectionError(f"attempt {context.attempt}")
    return context.attempt


@task()
def declined(order_id: int) -> None:
    raise PaymentDeclined(f"order {order_id}")


@task()
async def double(x: int) -> int:
    return 2 * x


@task()
def add(a: int, b: int) -> int:
    return a + b
