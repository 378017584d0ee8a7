"""Generated DataFrame rows for schemas with string columns (ONNX verification of text models).

A text model is only as well verified as its inputs are varied: the rows here recombine the
tokens of the input example (so the model's vocabulary is hit, with repeated terms and new
n-grams) and glue them with what tokenizers disagree on — punctuation, case, single characters
between words, tabs and newlines, accents, other scripts, emoji, empty strings. Categorical
string columns (no example value has a space) only get values seen in the example, so encoders
with ``handle_unknown='error'`` stay valid. Everything is a pure function of the arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from sibyl.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from sibyl.runtime.schema import InputSchema
    from sibyl.runtime.types import Batch

Array = np.ndarray[Any, Any]
NumericRows = Callable[[Array | None, "InputSchema", int], Array]
"""Generates numeric rows like ``loader.synthetic_batch(example, schema, rows)``."""

DEFAULT_TOKENS = ("alert", "login", "failed", "user", "admin", "server", "request", "error")
"""Tokens for text columns when there is no example to take them from."""
UNSEEN = ("zyxwv", "Qwerty", "naïve", "Ünïcode", "straße", "İstanbul", "ΟΔΟΣ", "日本語", "🙂")
EDGE_TEXTS = ("", " ", "!!!", "?", "a", "   spaced   out   ", "tab\tnew\nline", "12 3 a1 b_2")
# how a pair of seen tokens is glued: what tokenizers disagree on
_GLUES = (" ", " ", " ", "  ", "-", ".", ",", "/", "_", "'", " a ", "\t", "\n", "é", "🙂", ": ")


def verification_frame(
    example: Batch | None, schema: InputSchema, rows: int, numeric: NumericRows
) -> pd.DataFrame:
    """The DataFrame ``example`` followed by generated rows, ``max(rows, len(example))`` in all,
    the generated ones built by ``schema`` exactly as a request's rows would be. Never raises
    for a schema: when generated rows do not validate (``bytes`` columns …) it returns the
    example alone, or the raw generated rows without one."""
    import pandas as pd

    frame = example if isinstance(example, pd.DataFrame) and len(example) else None
    extra = rows - (0 if frame is None else len(frame))
    if frame is not None and extra <= 0:
        return frame
    generated = synthetic_frame(frame, schema, extra, numeric)
    try:
        built = schema.from_frame(generated, field="verification rows")
    except (InvalidInputError, TypeError, ValueError):  # kinds ONNX refuses anyway (bytes …)
        return frame if frame is not None else generated
    return cast("pd.DataFrame", built if frame is None else schema.concat([frame, built]))


def synthetic_frame(
    example: pd.DataFrame | None,
    schema: InputSchema,
    rows: int,
    numeric: NumericRows,
    seed: int = 0,
) -> pd.DataFrame:
    """``rows`` generated rows with the schema's columns, seeded (same call, same rows).

    Numeric columns come from ``numeric`` (the example's numeric columns plus noise); ``str``
    columns from :func:`text_values` or :func:`category_values`; ``datetime`` columns are the
    example's shifted by up to ±3 days in whole seconds (2026-01-01 without an example); other
    kinds repeat the example's values (``""`` without one).
    """
    import pandas as pd

    from sibyl.runtime.schema import InputSchema

    rng = np.random.default_rng(seed)
    frame = example if example is not None and len(example) > 0 else None
    out: dict[str, Any] = {}
    numeric_cols = [c for c in schema.columns if c.kind in ("float", "int", "bool")]
    if numeric_cols:
        names = [c.name for c in numeric_cols]
        base = None if frame is None else frame[names].to_numpy(np.float64)
        values = numeric(base, InputSchema(numeric_cols), rows)
        for j, col in enumerate(numeric_cols):
            out[col.name] = _typed(values[:, j], col.kind)
    for col in schema.columns:
        seen = [] if frame is None else list(frame[col.name])
        if col.kind == "str":
            out[col.name] = _strings([v for v in seen if isinstance(v, str)], rows, rng)
        elif col.kind == "datetime":
            out[col.name] = _datetimes(seen, rows, rng)
        elif col.name not in out:
            out[col.name] = [seen[i % len(seen)] if seen else "" for i in range(rows)]
    return pd.DataFrame({c.name: out[c.name] for c in schema.columns})


def _typed(values: Array, kind: str) -> Array:
    if kind == "int":
        return values.astype(np.int64)
    if kind == "bool":
        return values.astype(bool)
    return values


def _strings(seen: list[str], rows: int, rng: np.random.Generator) -> list[str]:
    if seen and not any(any(ch.isspace() for ch in v) for v in seen):
        return category_values(seen, rows, rng)
    return text_values(seen, rows, rng)


def category_values(seen: list[str], rows: int, rng: np.random.Generator) -> list[str]:
    """``rows`` values drawn from the example's values ``seen`` (uniformly over distinct ones)."""
    distinct = sorted(set(seen))
    return [distinct[int(i)] for i in rng.integers(len(distinct), size=rows)]


def text_values(seen: list[str], rows: int, rng: np.random.Generator) -> list[str]:
    """``rows`` texts: the example texts ``seen``, then seeded recombinations of their tokens.

    Each generated text strings together 1–12 tokens (seen tokens mostly, with repeats; an
    unseen or non-ASCII one now and then), each in its own case (as is, lower, UPPER, Title,
    mIxEd), glued by spaces or by punctuation, tabs, newlines, one-letter words, accents or
    emoji. One row in eight is an edge case (empty, blank, punctuation only, one letter …).
    """
    tokens = [t for text in seen for t in text.split()] or list(DEFAULT_TOKENS)
    texts = list(seen[:rows])
    while len(texts) < rows:
        if rng.random() < 0.125:
            texts.append(EDGE_TEXTS[int(rng.integers(len(EDGE_TEXTS)))])
        else:
            texts.append(_recombined(tokens, rng))
    return texts


def _recombined(tokens: list[str], rng: np.random.Generator) -> str:
    n = int(rng.integers(1, 13))
    words = [_token(tokens, rng) for _ in range(n)]
    text = words[0]
    for word in words[1:]:
        glue = _GLUES[int(rng.integers(len(_GLUES)))]
        text = f"{text}{glue}{word}"
    return text


def _token(tokens: list[str], rng: np.random.Generator) -> str:
    word = (
        UNSEEN[int(rng.integers(len(UNSEEN)))]
        if rng.random() < 0.1
        else tokens[int(rng.integers(len(tokens)))]
    )
    case = int(rng.integers(8))
    if case == 0:
        return word.upper()
    if case == 1:
        return word.title()
    if case == 2:
        return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(word))
    return word


def _datetimes(seen: list[Any], rows: int, rng: np.random.Generator) -> Any:
    import pandas as pd

    stamps = pd.to_datetime(pd.Series(seen if seen else ["2026-01-01T12:00:00"]))
    base = stamps.iloc[np.arange(rows) % len(stamps)].reset_index(drop=True)
    # whole seconds: new hours, minutes, weekdays (weekends too) and, as start and end columns
    # move independently, durations with seconds; the example's timezone is kept
    seconds = rng.integers(-3 * 86_400, 3 * 86_400, size=rows)
    return base + pd.to_timedelta(seconds, unit="s")
