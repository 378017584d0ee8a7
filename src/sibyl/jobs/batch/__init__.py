"""Batch scoring jobs (kind ``batch_score``): score a CSV / Parquet / JSONL input, local or on
S3, with a registered model version, in chunks that every worker processes in parallel, into
Parquet or CSV part files with provenance columns. See docs/jobs.md and :mod:`._kind`.

Importing this package is cheap (pyarrow is imported by the steps that read and write).
"""

from __future__ import annotations

from sibyl.jobs.batch._params import BatchParams

__all__ = ["KIND", "BatchParams", "register_kinds"]

KIND = "batch_score"


def register_kinds() -> None:
    """Register the ``batch_score`` kind (called by :func:`sibyl.jobs.load_kinds`)."""
    from sibyl.jobs._kinds import register_job_kind
    from sibyl.jobs.batch._kind import finish, plan, score_chunk, validate

    register_job_kind(
        KIND,
        plan,
        BatchParams,
        description="Score a CSV / Parquet / JSONL file or directory (local or s3://) with a "
        "model version into Parquet or CSV part files, in parallel chunks",
        chunk=score_chunk,
        finish=finish,
        validate=validate,
    )
