"""Round trips and error messages of the three knowledge-tracing file formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing import (
    StudentSequence,
    read_per_student_csv,
    read_qa,
    read_wide_csv,
    simulate_5,
    variable_length,
    write_per_student_csv,
    write_qa,
    write_wide_csv,
)


@pytest.fixture(scope="module")
def sequences() -> list[StudentSequence]:
    return variable_length(n_students=300, min_len=10, max_len=200, seed=5)


def assert_same(a: list[StudentSequence], b: list[StudentSequence]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.exercises, y.exercises)
        np.testing.assert_array_equal(x.correct, y.correct)
        assert y.exercises.dtype == np.int64 and y.correct.dtype == np.int8


def test_wide_round_trip(tmp_path: Path) -> None:
    d = simulate_5(300, seed=2)
    path = tmp_path / "wide.csv"
    write_wide_csv(path, d.exercises[0], d.correct)
    ids, correct = read_wide_csv(path)
    np.testing.assert_array_equal(ids, np.arange(50))
    np.testing.assert_array_equal(correct, d.correct)
    assert correct.dtype == np.int8
    assert path.read_text().splitlines()[0].startswith("0,1,2,")


def test_qa_round_trip(tmp_path: Path, sequences: list[StudentSequence]) -> None:
    path = tmp_path / "data.qa"
    write_qa(path, sequences)
    assert_same(sequences, read_qa(path))
    assert len(path.read_text().splitlines()) == 3 * len(sequences)


def test_per_student_round_trip(tmp_path: Path, sequences: list[StudentSequence]) -> None:
    path = tmp_path / "students.csv"
    write_per_student_csv(path, sequences)
    assert_same(sequences, read_per_student_csv(path))


def test_qa_tolerates_trailing_commas_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.qa"
    path.write_text("3\n4,17,4,\n0,1,1,\n\n1\n2\n1\n")
    got = read_qa(path)
    assert [s.exercises.tolist() for s in got] == [[4, 17, 4], [2]]
    assert [s.correct.tolist() for s in got] == [[0, 1, 1], [1]]


def test_wide_bad_row_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("0,1,2\n1,0,1\n1,2,0\n")
    with pytest.raises(InvalidInputError, match=r"line 3: expected answers that are all 0 or 1"):
        read_wide_csv(path)


def test_qa_count_mismatch_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "data.qa"
    path.write_text("2\n1,2\n0,1\n3\n4,5\n1,1\n")
    with pytest.raises(InvalidInputError, match=r"line 5: expected 3 exercise ids"):
        read_qa(path)


def test_per_student_bad_answers_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "students.csv"
    path.write_text('student,exercises,correct\n0,"1,2","0,1"\n1,"3,4","1,x"\n')
    with pytest.raises(InvalidInputError, match=r"line 3: expected comma-separated"):
        read_per_student_csv(path)


def test_per_student_length_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "students.csv"
    path.write_text('student,exercises,correct\n0,"1,2,3","0,1"\n')
    with pytest.raises(InvalidInputError, match=r"line 2: expected 3 answers"):
        read_per_student_csv(path)


def test_per_student_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "students.csv"
    path.write_text("user,seq\n")
    with pytest.raises(InvalidInputError, match=r"line 1: expected the header"):
        read_per_student_csv(path)
