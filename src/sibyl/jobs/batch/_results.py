"""Reading back the rows a batch job wrote, a page at a time (``GET /v1/batch/{id}/results``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from sibyl.errors import InvalidInputError
from sibyl.jobs.batch import _files

MAX_PAGE = 10_000


def read_page(
    result: Mapping[str, Any], offset: int, limit: int, s3_endpoint: str | None
) -> list[dict[str, Any]]:
    """Output rows ``offset`` to ``offset + limit`` (by ``row_index`` order of the parts) of a
    succeeded batch job whose ``result`` is its summary."""
    if not 0 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"'limit' must be 0 to {MAX_PAGE}, got {limit}", field="limit")
    if offset < 0:
        raise InvalidInputError(f"'offset' must be ≥ 0, got {offset}", field="offset")
    loc = _files.locate(str(result["output"]), s3_endpoint, "output")
    with loc.fs.open_input_stream(loc.join(_files.MANIFEST)) as f:
        manifest = orjson.loads(f.read())
    rows: list[dict[str, Any]] = []
    skip = offset
    for chunk in manifest["chunks"]:
        if len(rows) >= limit:
            break
        n = int(chunk["rows"])
        if skip >= n:
            skip -= n
            continue
        table = _read_part(loc, chunk["file"], manifest["format"])
        rows.extend(table.slice(skip, limit - len(rows)).to_pylist())
        skip = 0
    return [_clean(r) for r in rows]


def _read_part(loc: _files.Location, name: str, fmt: str) -> Any:
    path = loc.join(name)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with loc.fs.open_input_file(path) as f:
            return pq.read_table(f)
    import pyarrow.csv as pacsv

    with loc.fs.open_input_stream(path) as f:
        return pacsv.read_csv(f)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe values: NaN → None, datetimes → ISO 8601."""
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and math.isnan(v):
            v = None
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        out[k] = v
    return out
