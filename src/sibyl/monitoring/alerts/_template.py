"""Message templates of alert rules: ``str.format`` syntax over a fixed set of names, nothing else.

A template such as ``"{name}: p95 latency of {model} is {value:.1f} ms (> {threshold} ms)"`` may
name only the fields below and the rule's own label keys, as plain names: attribute access
(``{value.__class__}``), indexing (``{labels[0]}``), positional fields (``{}``) and nested
format specs (``{value:{width}}``) are refused, and widths/precisions are capped, so a template
cannot reach into objects or blow up memory. :func:`check_template` runs at rule creation and
renders the template once with sample values, so type mismatches (``{model:.3f}``) are refused
there too, with an error naming the rule field.

Fields: ``name`` (the rule), ``metric``, ``value`` (float, the last observed value),
``threshold`` (float), ``condition`` (``>`` …), ``severity``, ``window`` (``"5m"``), ``labels``
(``"model=churn, feature=age"``, every label of the alert) and each key of the rule's labels.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Mapping
from typing import Any

from sibyl.errors import InvalidInputError

FLOAT_FIELDS = ("value", "threshold")
TEXT_FIELDS = ("name", "metric", "condition", "severity", "window", "labels")
BUILTIN_FIELDS = frozenset(FLOAT_FIELDS + TEXT_FIELDS)
MAX_TEMPLATE_CHARS = 2000
MAX_WIDTH = 64
# the format-spec mini-language: [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_SPEC = re.compile(r"(?:.?[<>=^])?[+\- ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[bcdeEfFgGnosxX%]?", re.S)


class _RestrictedFormatter(string.Formatter):
    """``string.Formatter`` resolving only plain names from the given mapping."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        if not field_name.isidentifier():
            raise KeyError(field_name)
        return kwargs[field_name], field_name


_FORMATTER = _RestrictedFormatter()


def check_template(text: object, label_keys: Collection[str], *, field: str) -> str:
    """``text`` when it is a valid template over the builtin fields and ``label_keys``.

    Raises :class:`InvalidInputError` naming ``field`` and the offending part otherwise.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"'{field}' must be a string template, got {text!r}", field=field)
    if len(text) > MAX_TEMPLATE_CHARS:
        raise InvalidInputError(
            f"'{field}' is longer than {MAX_TEMPLATE_CHARS} characters", field=field
        )
    allowed = BUILTIN_FIELDS | set(label_keys)
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as error:
        raise _bad(
            field, f"is not a valid template ({error}); write literal braces as {{{{ }}}}"
        ) from None
    for _, name, spec, conversion in parts:
        if name is not None:
            _check_field(name, spec or "", conversion, allowed, field)
    try:
        render_template(text, _sample(label_keys), strict=True)
    except (ValueError, TypeError) as error:
        raise _bad(
            field, f"cannot be rendered ({error}); numeric formats suit value/threshold"
        ) from None
    return text


def _check_field(
    name: str, spec: str, conversion: str | None, allowed: Collection[str], field: str
) -> None:
    if not name.isidentifier():
        raise _bad(field, f"uses '{{{name}}}'; only plain names are allowed, e.g. {{value:.3f}}")
    if name not in allowed:
        raise _bad(field, f"uses unknown field '{{{name}}}'; known: {', '.join(sorted(allowed))}")
    if conversion not in (None, "s", "r", "a"):
        raise _bad(field, f"uses unknown conversion '!{conversion}' on '{name}'")
    match = _SPEC.fullmatch(spec)
    if "{" in spec or match is None:
        raise _bad(field, f"has an unsupported format spec '{spec}' on '{name}'")
    if any(int(n) > MAX_WIDTH for n in match.groups() if n):
        raise _bad(field, f"has a width or precision over {MAX_WIDTH} on '{name}'")


def _bad(field: str, what: str) -> InvalidInputError:
    return InvalidInputError(f"'{field}' {what}", field=field)


def _sample(label_keys: Collection[str]) -> dict[str, object]:
    values: dict[str, object] = {key: "x" for key in label_keys}
    values.update({key: "x" for key in TEXT_FIELDS})
    values.update({key: 1.0 for key in FLOAT_FIELDS})
    return values


def render_template(text: str, values: Mapping[str, object], *, strict: bool = False) -> str:
    """``text`` with its fields filled from ``values``.

    A template that passed :func:`check_template` renders; should it fail anyway (a field absent
    from ``values``), the raw template comes back unless ``strict``.
    """
    try:
        return _FORMATTER.vformat(text, (), values)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        if strict:
            raise
        return text
