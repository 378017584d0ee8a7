"""Fallback chain with toy predictors (echo, failing, slow), no mocks."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sibyl.errors import BackendUnavailableError, DeadlineExceededError, InvalidInputError
from sibyl.routing import (
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    DefaultValue,
    FailureKind,
    FallbackPredictor,
)
from sibyl.runtime.types import Batch, Prediction, Predictor
from tests.toys import FAIL_MARKER, EchoPredictor, FailingPredictor, SlowPredictor

OK = np.array([[1.0, 2.0], [3.0, 4.0]])
BAD = np.array([[1.0, FAIL_MARKER]])


class Broken:
    """Always raises ``error``; counts calls and the most threads inside at once."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0
        self.inside = 0
        self.most_inside = 0
        self._lock = threading.Lock()

    def predict(self, batch: Batch) -> Prediction:
        with self._lock:
            self.calls += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.0001)
        with self._lock:
            self.inside -= 1
        raise self.error


class Counting(EchoPredictor):
    """Echo that counts the most threads inside ``predict`` at once."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.most_inside = 0
        self._lock = threading.Lock()

    def predict(self, batch: Batch) -> Prediction:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.0001)
        with self._lock:
            self.inside -= 1
        return super().predict(batch)


class ShortAnswer:
    def predict(self, batch: Batch) -> Prediction:
        return Prediction(np.zeros(len(batch) - 1))


@pytest.fixture
def chains() -> Iterator[list[FallbackPredictor]]:
    made: list[FallbackPredictor] = []
    yield made
    for chain in made:
        chain.close()


def test_primary_answers_when_it_can() -> None:
    chain = FallbackPredictor(EchoPredictor(), [DefaultValue(0.0)])
    result = chain.predict_with_fallback(OK)
    assert result.answered_by == "primary" and result.reason is None and not result.fell_back
    assert result.failures == ()
    np.testing.assert_array_equal(result.prediction.predictions, [3.0, 7.0])
    assert isinstance(chain, Predictor)
    np.testing.assert_array_equal(chain.predict(OK).predictions, [3.0, 7.0])


def test_failing_primary_falls_back_and_says_why() -> None:
    chain = FallbackPredictor(FailingPredictor(), [EchoPredictor()], names=["churn/4", "churn/3"])
    result = chain.predict_with_fallback(BAD)
    assert result.answered_by == "churn/3" and result.reason is FailureKind.ERROR
    assert [f.member for f in result.failures] == ["churn/4"]
    assert isinstance(result.failures[0].error, RuntimeError)
    np.testing.assert_array_equal(result.prediction.predictions, [1.0 + FAIL_MARKER])


def test_failing_primary_under_load_from_8_threads_gives_zero_errors() -> None:
    primary, fallback = Broken(RuntimeError("v4 is broken")), Counting()
    chain = FallbackPredictor(primary, [fallback, DefaultValue(-1.0)])
    batches = [np.full((1 + i % 5, 3), float(i)) for i in range(1000)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(chain.predict_with_fallback, batches))
    assert len(results) == 1000
    assert Counter(r.answered_by for r in results) == {"fallback-1": 1000}
    assert all(r.reason is FailureKind.ERROR for r in results)
    for batch, r in zip(batches, results, strict=True):
        np.testing.assert_array_equal(r.prediction.predictions, batch.sum(axis=1))
    assert primary.calls == 1000
    assert primary.most_inside == 1 and fallback.most_inside == 1  # one call at a time each


def test_mixed_failures_are_reported_per_call() -> None:
    chain = FallbackPredictor(FailingPredictor(), [EchoPredictor()])
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(chain.predict_with_fallback, [OK, BAD] * 200))
    assert [r.answered_by for r in results] == ["primary", "fallback-1"] * 200


@pytest.mark.parametrize("rows", [1, 7, 64])
def test_default_value_answers_every_row(rows: int) -> None:
    batch = np.full((rows, 3), FAIL_MARKER)
    chain = FallbackPredictor(
        FailingPredictor(), [DefaultValue(0, probabilities=(0.8, 0.2), classes=("stay", "churn"))]
    )
    result = chain.predict_with_fallback(batch)
    assert result.answered_by == "default"
    p = result.prediction
    assert p.predictions.shape == (rows,) and (p.predictions == 0).all()
    assert p.probabilities is not None and p.probabilities.shape == (rows, 2)
    np.testing.assert_array_equal(p.probabilities, np.tile([0.8, 0.2], (rows, 1)))
    assert p.classes == ("stay", "churn")


def test_default_value_shapes_for_vector_and_object_values() -> None:
    batch = np.zeros((4, 2))
    vector = DefaultValue([0.5, 1.5]).predict(batch)
    assert vector.predictions.shape == (4, 2)
    np.testing.assert_array_equal(vector.predictions[3], [0.5, 1.5])
    record = DefaultValue({"mastery": 0.5}).predict(batch)
    assert record.predictions.shape == (4,) and record.predictions[2] == {"mastery": 0.5}
    assert len(DefaultValue("none").predict(np.zeros((0, 2)))) == 0


def test_default_value_checks_its_probabilities() -> None:
    with pytest.raises(InvalidInputError):
        DefaultValue(0, probabilities=(0.5, 0.5))
    with pytest.raises(InvalidInputError):
        DefaultValue(0, probabilities=(1.0,), classes=(0, 1))


def test_when_every_member_fails_the_primary_error_is_raised() -> None:
    primary_error = RuntimeError("v4 is broken")
    chain = FallbackPredictor(Broken(primary_error), [Broken(ValueError("v3 too"))])
    with pytest.raises(RuntimeError, match="v4 is broken") as info:
        chain.predict(OK)
    assert info.value is primary_error
    assert any("v3 too" in note for note in info.value.__notes__)


def test_a_slow_primary_times_out_and_the_fallback_answers(
    chains: list[FallbackPredictor],
) -> None:
    slow = SlowPredictor(2.0)
    chain = FallbackPredictor(slow, [EchoPredictor()], primary_timeout_s=0.05)
    chains.append(chain)
    start = time.monotonic()
    result = chain.predict_with_fallback(OK)
    assert time.monotonic() - start < 1.0  # did not wait for the 2 s model
    assert result.answered_by == "fallback-1" and result.reason is FailureKind.TIMEOUT
    assert isinstance(result.failures[0].error, DeadlineExceededError)


def test_a_passed_deadline_leaves_the_answer_to_the_default_value(
    chains: list[FallbackPredictor],
) -> None:
    chain = FallbackPredictor(SlowPredictor(1.0), [EchoPredictor(), DefaultValue(-1.0)])
    chains.append(chain)
    result = chain.predict_with_fallback(OK, deadline=time.monotonic() + 0.05)
    assert result.answered_by == "default"
    assert [f.kind for f in result.failures] == [FailureKind.TIMEOUT, FailureKind.TIMEOUT]
    np.testing.assert_array_equal(result.prediction.predictions, [-1.0, -1.0])


def test_a_deadline_with_no_default_raises_the_primary_timeout(
    chains: list[FallbackPredictor],
) -> None:
    chain = FallbackPredictor(SlowPredictor(1.0), [SlowPredictor(1.0)])
    chains.append(chain)
    with pytest.raises(DeadlineExceededError, match="primary"):
        chain.predict(OK, deadline=time.monotonic() + 0.05)


def test_an_open_breaker_skips_the_primary_without_calling_it() -> None:
    breaker = CircuitBreaker("churn/4", BreakerSettings(min_calls=5, max_error_rate=0.5))
    primary = Broken(RuntimeError("down"))
    chain = FallbackPredictor(
        primary, [EchoPredictor()], names=["churn/4", "churn/3"], breakers={"churn/4": breaker}
    )
    results = [chain.predict_with_fallback(OK) for _ in range(20)]
    assert primary.calls == 5  # then the circuit opened
    assert breaker.state is BreakerState.OPEN
    assert [r.reason for r in results] == [FailureKind.ERROR] * 5 + [FailureKind.CIRCUIT_OPEN] * 15
    assert all(r.answered_by == "churn/3" for r in results)
    assert isinstance(results[-1].failures[0].error, BackendUnavailableError)


def test_all_circuits_open_raises_backend_unavailable() -> None:
    breaker = CircuitBreaker("p", BreakerSettings(min_calls=1))
    breaker.record(False, 0.1)
    chain = FallbackPredictor(EchoPredictor(), [], names=["p"], breakers={"p": breaker})
    with pytest.raises(BackendUnavailableError, match="circuit breaker of 'p' is open"):
        chain.predict(OK)


def test_a_wrong_number_of_rows_counts_as_a_failure() -> None:
    chain = FallbackPredictor(ShortAnswer(), [EchoPredictor()])
    result = chain.predict_with_fallback(OK)
    assert result.answered_by == "fallback-1"
    assert "returned 1 rows for 2 inputs" in str(result.failures[0].error)


def test_member_names_must_match_and_be_unique() -> None:
    with pytest.raises(InvalidInputError, match="unique names"):
        FallbackPredictor(EchoPredictor(), [EchoPredictor()], names=["a", "a"])
    with pytest.raises(InvalidInputError, match="unique names"):
        FallbackPredictor(EchoPredictor(), [EchoPredictor()], names=["a"])
    chain = FallbackPredictor(EchoPredictor(), [EchoPredictor(), DefaultValue(0, name="zero")])
    assert chain.names == ("primary", "fallback-1", "zero")
