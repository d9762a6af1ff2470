"""Streaming images batch by batch within a pixel budget."""
from __future__ import annotations

from detection.batches import PixelBudget, release_memory


def test_budget_admits_in_order_until_spent():
    budget = PixelBudget(10)
    assert [budget.take(n) for n in (4, 4, 4, 2)] == [True, True, False, True]


def test_release_memory_is_callable_anywhere():
    release_memory()
