"""Readers and writers for the three file formats knowledge-tracing data sets come in.

- **wide** CSV: a header of exercise ids, then one row of 0/1 answers per student (every
  student answers the same exercises in the same order, as in "Simulated-5")::

      0,1,2
      1,0,1
- **qa** text: three lines per student — the attempt count, the exercise ids, the answers::

      3
      4,17,4
      0,1,1
- **per-student** CSV: a header, then one row per student with comma-joined sequences::

      student,exercises,correct
      0,"4,17,4","0,1,1"

Writers then readers round-trip exactly (sequences must be non-empty). A malformed file raises
:class:`~sibyl.errors.InvalidInputError` naming the file, the line and what was expected.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence

import numpy as np

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing.data import BinArray, IntArray, StudentSequence

PathLike = str | os.PathLike[str]
PER_STUDENT_HEADER = ("student", "exercises", "correct")
"""Column names of the per-student CSV format."""


def _bad(path: PathLike, line: int, expected: str, got: object) -> InvalidInputError:
    return InvalidInputError(
        f"{os.fspath(path)}, line {line}: expected {expected}, got {got!r}", field="file"
    )


def _ints(path: PathLike, line: int, text: str, what: str) -> IntArray:
    """Parse comma-separated non-negative integers (one trailing comma tolerated)."""
    fields = text.strip().removesuffix(",").split(",") if text.strip() else []
    if not fields or not all(f.strip().isdigit() for f in fields):
        raise _bad(path, line, f"comma-separated non-negative integer {what}", text)
    return np.array([int(f) for f in fields], dtype=np.int64)


def _answers(path: PathLike, line: int, text: str) -> BinArray:
    values = _ints(path, line, text, "answers")
    if np.any(values > 1):
        raise _bad(path, line, "answers that are all 0 or 1", text)
    return values.astype(np.int8)


def _check_pair(path: PathLike, line: int, exercises: IntArray, correct: BinArray) -> None:
    if exercises.size != correct.size:
        raise _bad(path, line, f"{exercises.size} answers (one per exercise)", correct.size)


def _join(values: Iterable[int]) -> str:
    return ",".join(str(int(v)) for v in values)


def _write_lines(path: PathLike, lines: Iterable[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(line + "\n" for line in lines)


# --- wide 0/1 matrix ---------------------------------------------------------------------------


def write_wide_csv(
    path: PathLike, exercise_ids: Sequence[int] | IntArray, correct: BinArray
) -> None:
    """Write a ``(n_students, T)`` 0/1 matrix under a header of the ``T`` exercise ids."""
    matrix = np.asarray(correct)
    if matrix.ndim != 2 or matrix.shape[1] != len(exercise_ids):
        raise InvalidInputError(
            f"correct must be (n_students, {len(exercise_ids)}), got shape {matrix.shape}",
            field="correct",
        )
    _write_lines(path, [_join(exercise_ids), *(_join(row) for row in matrix)])


def read_wide_csv(path: PathLike) -> tuple[IntArray, BinArray]:
    """Read a wide CSV: the exercise ids ``(T,)`` and the 0/1 answers ``(n_students, T)``."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    if not lines:
        raise _bad(path, 1, "a header of comma-separated exercise ids", "")
    header = _ints(path, 1, lines[0], "exercise ids")
    rows = []
    for number, text in enumerate(lines[1:], start=2):
        row = _answers(path, number, text)
        if row.size != header.size:
            raise _bad(path, number, f"{header.size} answers (one per header column)", text)
        rows.append(row)
    correct = np.array(rows, dtype=np.int8).reshape(len(rows), header.size)
    return header, correct


# --- 3-line "qa" text --------------------------------------------------------------------------


def write_qa(path: PathLike, sequences: Iterable[StudentSequence]) -> None:
    """Write three lines per student: count, exercise ids, answers."""
    lines: list[str] = []
    for exercises, correct in sequences:
        lines += [str(len(exercises)), _join(exercises), _join(correct)]
    _write_lines(path, lines)


def read_qa(path: PathLike) -> list[StudentSequence]:
    """Read a 3-line "qa" file; blank lines between students are skipped."""
    with open(path, encoding="utf-8") as fh:
        lines = [
            (n, text) for n, text in enumerate(fh.read().splitlines(), start=1) if text.strip()
        ]
    if len(lines) % 3:
        last = lines[-1][0]
        raise _bad(
            path,
            last,
            "3 lines per student (count, exercise ids, answers)",
            f"{len(lines) % 3} trailing line(s)",
        )
    out: list[StudentSequence] = []
    for i in range(0, len(lines), 3):
        (n_count, count), (n_ex, ex_text), (n_ans, ans_text) = lines[i : i + 3]
        if not count.strip().isdigit():
            raise _bad(path, n_count, "an attempt count (a non-negative integer)", count)
        exercises = _ints(path, n_ex, ex_text, "exercise ids")
        if exercises.size != int(count):
            raise _bad(path, n_ex, f"{int(count)} exercise ids (the count line)", ex_text)
        correct = _answers(path, n_ans, ans_text)
        _check_pair(path, n_ans, exercises, correct)
        out.append(StudentSequence(exercises, correct))
    return out


# --- one row per student -----------------------------------------------------------------------


def write_per_student_csv(path: PathLike, sequences: Iterable[StudentSequence]) -> None:
    """Write ``student,exercises,correct`` rows; ``student`` is the row index."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(PER_STUDENT_HEADER)
        for i, (exercises, correct) in enumerate(sequences):
            writer.writerow((i, _join(exercises), _join(correct)))


def read_per_student_csv(path: PathLike) -> list[StudentSequence]:
    """Read a per-student CSV (header ``student,exercises,correct``) in file order."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) != PER_STUDENT_HEADER:
        raise _bad(
            path, 1, "the header " + ",".join(PER_STUDENT_HEADER), ",".join(rows[0]) if rows else ""
        )
    out: list[StudentSequence] = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(PER_STUDENT_HEADER):
            raise _bad(path, number, '3 fields: student, "exercise ids", "answers"', row)
        exercises = _ints(path, number, row[1], "exercise ids")
        correct = _answers(path, number, row[2])
        _check_pair(path, number, exercises, correct)
        out.append(StudentSequence(exercises, correct))
    return out
