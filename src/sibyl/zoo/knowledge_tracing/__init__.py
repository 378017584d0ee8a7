"""Knowledge tracing (USE-CASES.md §1): the "Simulated-5" data, its protocol, file formats.

``simulate_5`` and ``variable_length`` generate data; ``evaluate_positions`` scores predictions
the paper's way; ``marginal_baseline`` and ``oracle`` are the reference predictors; the
``read_*`` / ``write_*`` functions handle the wide, "qa" and per-student file formats.
"""

from __future__ import annotations

from sibyl.zoo.knowledge_tracing.data import (
    KTDataset,
    StudentSequence,
    evaluate_positions,
    marginal_baseline,
    oracle,
    simulate_5,
    variable_length,
)
from sibyl.zoo.knowledge_tracing.formats import (
    read_per_student_csv,
    read_qa,
    read_wide_csv,
    write_per_student_csv,
    write_qa,
    write_wide_csv,
)

__all__ = [
    "KTDataset",
    "StudentSequence",
    "evaluate_positions",
    "marginal_baseline",
    "oracle",
    "read_per_student_csv",
    "read_qa",
    "read_wide_csv",
    "simulate_5",
    "variable_length",
    "write_per_student_csv",
    "write_qa",
    "write_wide_csv",
]
