"""What stands between a scikit-learn pipeline over string columns and ONNX, and the converter
options that make skl2onnx's text vectorizers tokenize like scikit-learn.

:func:`inspect_pipeline` walks a fitted pipeline (``Pipeline``, ``ColumnTransformer``,
``FeatureUnion``: :func:`pipeline_steps`) and returns a :class:`PipelineReport`: the steps
ONNX cannot express (each with a reason; a ``FunctionTransformer`` only when its function has
no builder, see :func:`sibyl.runtime.onnx_function`) and, for every ``CountVectorizer`` /
``TfidfVectorizer``, the skl2onnx options (``tokenexp``, ``locale``) under which ONNX Runtime's
``Tokenizer`` / ``StringNormalizer`` give the same tokens as the vectorizer's ``token_pattern``
and ``lowercase``. Pure functions of the model, except :func:`string_locale`, which asks ONNX
Runtime once per process.

Why ``tokenexp`` is needed: skl2onnx replaces scikit-learn's default pattern
``(?u)\\b\\w\\w+\\b`` by ``[a-zA-Z0-9_]+``, which also yields one-character tokens (breaking
bigrams such as "user a admin") and cuts non-ASCII words; ONNX Runtime's RE2 reads ``\\w``,
``\\d`` and ``\\b`` as ASCII only. :func:`re2_token_pattern` rewrites them with Unicode classes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sibyl.runtime._onnx_functions import has_onnx_builder

_WORD = r"[\p{L}\p{N}_]"  # Python's Unicode \w: str.isalnum() or "_"
_WORD_IN_CLASS = r"\p{L}\p{N}_"
_LOCALES = ("C.UTF-8", "en_US.UTF-8")
_UNSUPPORTED_REGEX = ("(?=", "(?!", "(?<=", "(?<!", "(?P=")


@dataclass(slots=True)
class PipelineReport:
    """Blockers (human-readable, one per unconvertible step) and skl2onnx options by ``id``."""

    blockers: list[str] = field(default_factory=list)
    options: dict[int, dict[str, Any]] = field(default_factory=dict)
    vectorizers: list[str] = field(default_factory=list)
    """``"token_pattern → tokenexp"`` per vectorizer, for reasons that mention tokenizing."""


def inspect_pipeline(model: Any) -> PipelineReport:
    """Walk ``model`` and report blockers and vectorizer options; never raises for a model."""
    report = PipelineReport()
    for step in pipeline_steps(model):
        name = type(step).__name__
        if (
            name == "FunctionTransformer"
            and getattr(step, "func", None) is not None
            and not has_onnx_builder(step)
        ):
            func = getattr(step.func, "__name__", type(step.func).__name__)
            report.blockers.append(
                f"FunctionTransformer({func}) runs Python code, which ONNX cannot express"
            )
        elif name in ("CountVectorizer", "TfidfVectorizer"):
            _add_vectorizer(step, report)
    return report


def pipeline_steps(model: Any) -> Iterator[Any]:
    """``model`` and every fitted sub-estimator, depth first (``'drop'`` etc. skipped).

    Walks ``Pipeline`` steps, ``ColumnTransformer`` transformers and ``FeatureUnion`` parts.
    """
    yield model
    if hasattr(model, "steps"):
        children = [s for _, s in model.steps]
    elif hasattr(model, "transformers_"):
        children = [t for _, t, _ in model.transformers_]
    elif hasattr(model, "transformer_list"):
        children = [t for _, t in model.transformer_list]
    else:
        children = []
    for child in children:
        if child is not None and not isinstance(child, str):
            yield from pipeline_steps(child)


def _add_vectorizer(vec: Any, report: PipelineReport) -> None:
    name = type(vec).__name__
    problem = _vectorizer_problem(vec)
    if problem is not None:
        report.blockers.append(f"{name} {problem}")
        return
    options: dict[str, Any] = {}
    if vec.analyzer == "word":
        tokenexp = re2_token_pattern(vec.token_pattern)
        if tokenexp is None:
            report.blockers.append(
                f"{name} token_pattern {vec.token_pattern!r} uses look-arounds, "
                "back-references or a capturing group, which ONNX Runtime's RE2 tokenizer lacks"
            )
            return
        options["tokenexp"] = tokenexp
        report.vectorizers.append(f"token_pattern {vec.token_pattern!r} → RE2 {tokenexp!r}")
    if vec.lowercase:
        locale = string_locale()
        if locale is None:
            report.blockers.append(
                f"{name} lowercases, and ONNX Runtime finds none of the locales "
                f"{', '.join(_LOCALES)} for its StringNormalizer (install one)"
            )
            return
        options["locale"] = locale
    report.options[id(vec)] = options


def _vectorizer_problem(vec: Any) -> str | None:
    """Why skl2onnx's vectorizer converter would not reproduce ``vec`` (``None``: it can)."""
    if callable(vec.analyzer):
        return "has a Python analyzer callable, which ONNX cannot express"
    if vec.tokenizer is not None:
        return "has a custom tokenizer (a Python callable), which ONNX cannot express"
    if vec.preprocessor is not None:
        return "has a custom preprocessor (a Python callable), which ONNX cannot express"
    if vec.strip_accents is not None:
        return "strips accents, which ONNX Runtime's StringNormalizer cannot do"
    if vec.stop_words is not None:
        return (
            "removes stop words per token; the ONNX StringNormalizer removes them per "
            "document, so n-grams would differ"
        )
    if vec.analyzer == "char_wb":
        return "uses analyzer='char_wb', which skl2onnx does not convert"
    if getattr(vec, "input", "content") != "content":
        return f"reads input={vec.input!r} (files), which ONNX cannot do"
    return None


def re2_token_pattern(pattern: str) -> str | None:
    """``pattern`` (Python ``re``, as scikit-learn uses it) rewritten for RE2 with Unicode
    classes; ``None`` when RE2 cannot express it or scikit-learn would use a capture group.

    ``\\b\\w{k,}\\b``-shaped patterns (the default ``(?u)\\b\\w\\w+\\b`` among them) become
    ``[\\p{L}\\p{N}_]{k,}`` — the same maximal runs — because RE2's ``\\b`` is ASCII-only.
    Elsewhere ``\\w`` / ``\\d`` / ``\\s`` get Unicode classes and ``\\b`` stays (ASCII): the
    verification decides whether that is close enough.
    """
    try:
        if re.compile(pattern).groups > 0:
            return None
    except re.error:
        return None
    if any(token in pattern for token in _UNSUPPORTED_REGEX) or re.search(r"\\[1-9]", pattern):
        return None
    body = pattern.removeprefix("(?u)")
    runs = _word_run_length(body)
    if runs is not None:
        return f"{_WORD}{{{runs},}}"
    return _unicode_classes(body)


def _word_run_length(body: str) -> int | None:
    """``k`` when ``body`` is ``\\b`` + ``\\w`` repeated + (``+`` | ``{m,}``) + ``\\b``."""
    found = re.fullmatch(r"\\b((?:\\w)+)(\+|\{(\d+),\})\\b", body)
    if found is None:
        return None
    atoms = len(found.group(1)) // 2
    if found.group(2) == "+":
        return atoms
    return atoms - 1 + int(found.group(3))


def _unicode_classes(body: str) -> str:
    """Replace ``\\w``, ``\\d``, ``\\s`` by Unicode classes, inside and outside ``[...]``."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            pair = body[i : i + 2]
            out.append(_unicode_escape(pair, in_class))
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


def _unicode_escape(pair: str, in_class: bool) -> str:
    inner = {"\\w": _WORD_IN_CLASS, "\\d": r"\p{Nd}", "\\s": r"\s"}.get(pair)
    if inner is None:
        return pair
    return inner if in_class or pair == "\\s" else f"[{inner}]"


@functools.cache
def string_locale() -> str | None:
    """A locale ONNX Runtime's ``StringNormalizer`` can construct here (``None``: none can).

    ONNX Runtime defaults to ``en_US.UTF-8`` and fails to open the session where that locale is
    not installed (slim containers have only ``C.UTF-8``). Checked once per process by opening
    a one-node session per candidate.
    """
    for locale in _LOCALES:
        if _locale_works(locale):
            return locale
    return None


def _locale_works(locale: str) -> bool:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node(
        "StringNormalizer", ["x"], ["y"], case_change_action="LOWER", locale=locale
    )
    graph = helper.make_graph(
        [node],
        "locale_probe",
        [helper.make_tensor_value_info("x", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [None])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception:  # ORT raises Fail when the locale cannot be constructed
        return False
    return True
