"""The tasks of a small shop, as an application would write them."""

from __future__ import annotations

import naqd


class PaymentDeclined(Exception):
    """The bank said no: retrying will not change its mind."""


def order_total(prices: list[float], shipping: float = 0.0) -> float:
    return round(sum(prices) + shipping, 2)


def charge(order_id: str, fail_first: int = 0) -> str:
    """Charge an order; the payment gateway is flaky for the first `fail_first` attempts
    (a transient error: worth a retry)."""
    attempt = naqd.current_job().attempt
    if attempt <= fail_first:
        raise ConnectionError(f"payment gateway unreachable (attempt {attempt})")
    return f"charged {order_id}"


def charge_card(order_id: str, card: str) -> str:
    if card.startswith("0000"):
        raise PaymentDeclined(f"card declined for order {order_id}")
    return f"charged {order_id}"


def pack(items: list[str]) -> int:
    """Pack an order, reporting progress as each item goes into the box."""
    job = naqd.current_job()
    for done, _item in enumerate(items, 1):
        job.raise_if_cancelled()  # a cancelled order stops being packed
        job.progress(done / len(items), f"packed {done} of {len(items)}")
    return len(items)
