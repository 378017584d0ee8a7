"""Parameters of a batch scoring job (kind ``batch_score``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

InputFormat = Literal["csv", "parquet", "jsonl"]
OutputFormat = Literal["parquet", "csv"]


class BatchParams(BaseModel):
    """Score every row of ``input`` with a model version and write ``output``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    model: str = Field(min_length=1, max_length=200)
    """Registered model name."""
    version: str | None = Field(default=None, max_length=64)
    """Version number or alias (``staging``); unset: production. Resolved once when the job
    starts, so every row is scored by the same version."""
    input: str = Field(min_length=1)
    """A file or a directory (every file of the format in it, in name order): local path,
    ``file://…`` or ``s3://bucket/key``."""
    output: str = Field(min_length=1)
    """Directory (local or ``s3://``) receiving ``part-NNNNN.<format>`` files (one per chunk)
    and ``_manifest.json``."""
    input_format: InputFormat | None = None
    """``csv`` (with a header row), ``parquet`` or ``jsonl``; unset: from the file extension."""
    output_format: OutputFormat = "parquet"
    """Format of the part files."""
    passthrough: list[str] = Field(default_factory=list, max_length=100)
    """Input columns copied to the output beside the predictions (e.g. ids)."""
    chunk_rows: int | None = Field(default=None, ge=1)
    """Input rows per chunk task (unset: ``jobs.chunk_rows``)."""
    overwrite: bool = False
    """Write into an output directory that already holds files (they are replaced)."""
