"""Knowledge tracing (USE-CASES.md §1): the "Simulated-5" data, its protocol, file formats,
DKT models, the BKT baseline, student insights and registration.

``simulate_5`` and ``variable_length`` generate data; ``evaluate_positions`` scores predictions
the paper's way; ``marginal_baseline``, ``bkt_baseline`` and ``oracle`` are the reference
predictors; the ``read_*`` / ``write_*`` functions handle the wide, "qa" and per-student file
formats. The torch modules live in ``models`` (DKT's LSTM, a SAKT-style Transformer), their
training loop in ``loop``; ``train.register_all`` trains and registers both (the zoo contract),
``reproduce`` measures the paper's table and ``student_insights`` reads a mastery vector.
Importing this package does not import torch.
"""

from __future__ import annotations

from sibyl.zoo.knowledge_tracing.bkt import BKTModel, BKTParams, bkt_baseline, fit_bkt
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
from sibyl.zoo.knowledge_tracing.insights import (
    SkillMastery,
    StudentInsights,
    Suggestion,
    student_insights,
    suggest_next,
    weakest_skills,
)
from sibyl.zoo.knowledge_tracing.reproduce import ReproRow, reproduce
from sibyl.zoo.knowledge_tracing.train import register_all

__all__ = [
    "BKTModel",
    "BKTParams",
    "KTDataset",
    "ReproRow",
    "SkillMastery",
    "StudentInsights",
    "StudentSequence",
    "Suggestion",
    "bkt_baseline",
    "evaluate_positions",
    "fit_bkt",
    "marginal_baseline",
    "oracle",
    "read_per_student_csv",
    "read_qa",
    "read_wide_csv",
    "register_all",
    "reproduce",
    "simulate_5",
    "student_insights",
    "suggest_next",
    "variable_length",
    "weakest_skills",
    "write_per_student_csv",
    "write_qa",
    "write_wide_csv",
]
