from __future__ import annotations

from django.db import models


class Order(models.Model):
    total = models.DecimalField(max_digits=8, decimal_places=2)
    paid = models.BooleanField(default=False)

    class Meta:
        app_label = "shop"
