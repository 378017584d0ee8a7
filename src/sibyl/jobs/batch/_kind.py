"""The ``batch_score`` job kind: plan → chunks → finish.

* **plan** (the job's ``run``): resolve the model version once (every row is scored by it),
  load it, list the input files, split them into chunks (:mod:`._plan`), fix the column types,
  and fan out.
* **chunk**: stream the chunk's rows in tables of ``jobs.read_rows`` rows → the model (the
  process's :class:`~sibyl.jobs.ModelSource`: in ``sibyl serve`` the version's batcher, LOW
  lane) → ``part-<chunk>.<format>`` written under ``_tmp/`` and moved into place when whole.
  Running a chunk twice writes the same file with the same rows, so a chunk re-run after a
  killed worker never duplicates a row.
* **finish**: check the rows add up, write ``_manifest.json``, remove ``_tmp/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from sibyl.errors import InvalidInputError, NotFoundError
from sibyl.jobs._kinds import FanOut
from sibyl.jobs.batch import _files, _plan
from sibyl.jobs.batch._params import BatchParams
from sibyl.jobs.batch._read import read_chunk
from sibyl.jobs.batch._write import RESERVED, PartWriter, output_table

if TYPE_CHECKING:
    import pyarrow as pa

    from sibyl.jobs._context import ChunkContext, JobContext, SubmitContext
    from sibyl.jobs._models import ScoringModel
    from sibyl.runtime.schema import InputSchema
    from sibyl.runtime.types import Batch

_ROW = re.compile(r"'input' row (\d+)")
_ARROW_TYPE = {
    "float": "double",
    "int": "double",
    "bool": "bool",
    "str": "string",
    "bytes": "string",
    "datetime": "string",
}


def _endpoint(ctx: JobContext | SubmitContext) -> str | None:
    return ctx.settings.jobs.s3_endpoint_url


# ---- submit-time checks ---------------------------------------------------------------------


def validate(params: BatchParams, ctx: SubmitContext) -> None:
    """The model and version exist, the input exists and has a known format, the output is
    free; ``InvalidInputError`` naming the parameter."""
    bad = sorted(set(params.passthrough) & RESERVED)
    if bad:
        raise InvalidInputError(
            f"'passthrough': {bad} are output column names of batch scoring; rename them",
            field="passthrough",
        )
    _check_model(params, ctx)
    _files.resolve_input(_files.locate(params.input, _endpoint(ctx), "input"), params.input_format)
    _files.check_output(_files.locate(params.output, _endpoint(ctx), "output"), params.overwrite)


def _check_model(params: BatchParams, ctx: SubmitContext) -> None:
    try:
        ctx.registry.list_versions(params.model)
    except NotFoundError as exc:
        raise InvalidInputError(f"'model': {exc.message}", field="model") from None
    try:
        ctx.registry.resolve(params.model, params.version)
    except NotFoundError as exc:
        where = "version" if params.version else "model"
        raise InvalidInputError(f"'{where}': {exc.message}", field=where) from None


# ---- plan -----------------------------------------------------------------------------------


def plan(ctx: JobContext, params: BatchParams) -> FanOut:
    """Resolve, load, split (see the module docstring)."""
    ctx.progress(0.0, "resolving the model")
    version = ctx.models.resolve(params.model, params.version)
    model = ctx.models.open(params.model, version)
    loc = _files.locate(params.input, _endpoint(ctx), "input")
    fmt, files = _files.resolve_input(loc, params.input_format)
    out = _files.locate(params.output, _endpoint(ctx), "output")
    _files.check_output(out, params.overwrite)
    out.fs.create_dir(out.path, recursive=True)
    chunk_rows = params.chunk_rows or ctx.settings.jobs.chunk_rows
    specs, header = _split(ctx, loc, files, fmt, chunk_rows)
    columns, types = _columns(model.schema, params.passthrough, fmt, loc, files[0][0], header)
    return FanOut(
        specs,
        {
            "model": params.model,
            "version": version,
            "format": fmt,
            "columns": columns,
            "features": _features(model.schema, columns, params.passthrough),
            "types": types,
            "header": header.decode("utf-8") if header else "",
            "rows": sum(s["rows"] for s in specs),
        },
    )


def _split(
    ctx: JobContext,
    loc: _files.Location,
    files: list[tuple[str, int]],
    fmt: str,
    chunk_rows: int,
) -> tuple[list[dict[str, Any]], bytes]:
    specs: list[dict[str, Any]] = []
    header = b""
    start = 0
    for i, (path, size) in enumerate(files):
        ctx.check_cancelled()
        ctx.progress(0.0, f"splitting input file {i + 1}/{len(files)}")
        if fmt == "parquet":
            found = _plan.parquet_specs(loc.fs, path, chunk_rows)
        else:
            found, head = _plan.text_specs(
                loc.fs, path, size, is_csv=fmt == "csv", chunk_rows=chunk_rows
            )
            header = header or head
        for spec in found:
            specs.append({**spec, "start": start})
            start += spec["rows"]
    if not specs:
        raise InvalidInputError(f"'input': {loc.uri} has no rows to score", field="input")
    return specs, header


def _available(fmt: str, loc: _files.Location, path: str, header: bytes) -> dict[str, str | None]:
    """Columns of the first input file with their Arrow type names (``None``: not simple)."""
    import pyarrow as pa

    if fmt == "csv":
        return dict.fromkeys(_plan.csv_columns(header))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with loc.fs.open_input_file(path) as f:
            schema = pq.ParquetFile(f).schema_arrow
    else:
        schema = _jsonl_schema(loc, path)
    return {f.name: _alias(f.type, pa) for f in schema}


def _alias(t: Any, pa: Any) -> str | None:
    for name in ("double", "float", "int64", "int32", "bool", "string", "large_string"):
        if t == pa.type_for_alias(name):
            return name
    return None


def _jsonl_schema(loc: _files.Location, path: str) -> pa.Schema:
    import io

    import pyarrow.json as pajson

    with loc.fs.open_input_file(path) as f:
        block = f.read(1 << 20)
    cut = block.rfind(b"\n") + 1 or len(block)
    return pajson.read_json(io.BytesIO(block[:cut])).schema


def _columns(
    schema: InputSchema,
    passthrough: list[str],
    fmt: str,
    loc: _files.Location,
    path: str,
    header: bytes,
) -> tuple[list[str], dict[str, str]]:
    """The columns to read and their fixed types (see :mod:`._read`)."""
    available = _available(fmt, loc, path, header)
    features = list(schema.names) if schema.typed else [
        c for c in available if c not in passthrough
    ]  # fmt: skip
    missing = [c for c in (*features, *passthrough) if c not in available]
    if missing:
        raise InvalidInputError(
            f"'input': {loc.uri} has no column {missing[0]!r} (the model needs "
            f"{features}; passthrough: {passthrough}); it has {list(available)}",
            field="input",
        )
    columns = list(dict.fromkeys([*features, *passthrough]))
    kinds = {c.name: c.kind for c in schema.columns}
    types: dict[str, str] = {}
    for col in columns:
        fixed = _ARROW_TYPE.get(kinds.get(col, ""))
        if col in passthrough and col not in kinds and fmt == "csv":
            fixed = "string"  # copied as written
        elif fixed is None and fmt == "jsonl":
            fixed = available.get(col)
        if fixed is not None and fmt != "parquet":
            types[col] = fixed
    return columns, types


def _features(schema: InputSchema, columns: list[str], passthrough: list[str]) -> list[str]:
    return list(schema.names) if schema.typed else [c for c in columns if c not in passthrough]


# ---- chunk ----------------------------------------------------------------------------------


def score_chunk(
    ctx: ChunkContext, params: BatchParams, plan: Mapping[str, Any], spec: Mapping[str, Any]
) -> dict[str, Any]:
    """Score one chunk into its part file; returns ``{"file", "rows", "start", "worker",
    "seconds"}``."""
    began = time.monotonic()
    model = ctx.models.open(plan["model"], plan["version"])
    src = _files.locate(params.input, _endpoint(ctx), "input")
    out = _files.locate(params.output, _endpoint(ctx), "output")
    name = f"part-{ctx.idx:05d}.{params.output_format}"
    provenance = {"model": plan["model"], "model_version": plan["version"], "job_id": ctx.job_id}
    start, expected = int(spec["start"]), int(spec["rows"])
    done = 0
    tables = read_chunk(
        src.fs, plan["format"], spec, plan["columns"], plan["types"],
        ctx.settings.jobs.read_rows, plan["header"].encode("utf-8"),
    )  # fmt: skip
    with _files.atomic_output(out, name) as stream:
        writer = PartWriter(stream, params.output_format)
        for table in tables:
            ctx.check_cancelled()
            pred = model.predict(_batch(model, table, plan["features"], start + done))
            now = datetime.now(UTC)
            writer.write(
                output_table(
                    table, params.passthrough, start + done, pred, provenance, now,
                    params.output_format,
                )
            )  # fmt: skip
            done += table.num_rows
        if done != expected:
            raise ValueError(
                f"chunk {ctx.idx} of {spec['file']} has {done} rows, the plan counted "
                f"{expected}: the input changed while the job ran; submit it again"
            )
        writer.close()
    seconds = round(time.monotonic() - began, 3)
    return {"file": name, "rows": done, "start": start, "worker": ctx.worker, "seconds": seconds}


def _batch(model: ScoringModel, table: pa.Table, features: list[str], start: int) -> Batch:
    frame = table.select(features).to_pandas()
    try:
        return model.schema.from_frame(frame, field="input")
    except InvalidInputError as exc:  # rows counted in the whole input, not in this table
        absolute = _ROW.sub(lambda m: f"input row {start + int(m.group(1))}", exc.message, 1)
        raise InvalidInputError(absolute, field="input") from None


# ---- finish ---------------------------------------------------------------------------------


def finish(
    ctx: JobContext, params: BatchParams, plan: Mapping[str, Any], results: list[dict[str, Any]]
) -> dict[str, Any]:
    """Check the totals, write ``_manifest.json``, drop ``_tmp/``; returns the job's result."""
    rows = sum(int(r.get("rows", 0)) for r in results)
    if rows != plan["rows"]:
        raise ValueError(f"the chunks scored {rows} rows, the input has {plan['rows']}")
    out = _files.locate(params.output, _endpoint(ctx), "output")
    summary = {
        "job_id": ctx.job_id,
        "model": plan["model"],
        "version": plan["version"],
        "input": params.input,
        "output": params.output,
        "format": params.output_format,
        "rows": rows,
        "files": [r["file"] for r in results],
    }
    manifest = {**summary, "chunks": results, "finished_at": datetime.now(UTC).isoformat()}
    _files.write_bytes(out, _files.MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    _files.remove_tmp(out)
    return {
        **summary,
        "files": len(results),
        "manifest": f"{params.output.rstrip('/')}/_manifest.json",
    }
