"""Feature rows of two students, as a caller sends them: one failing a concept, one doing well."""

from __future__ import annotations

from typing import Any

FAILING: dict[str, Any] = {
    "attempts": 8,
    "accuracy": 0.125,
    "rolling_accuracy": 0.0,
    "right_streak": 0,
    "wrong_streak": 6,
    "attempts_since_correct": 6,
}
"""Failing the concept for a while: six wrong answers in a row."""

DOING_WELL: dict[str, Any] = {
    "attempts": 6,
    "accuracy": 0.8333,
    "rolling_accuracy": 1.0,
    "right_streak": 5,
    "wrong_streak": 0,
    "attempts_since_correct": 0,
}
"""Five right answers in a row."""
