"""The back-off circuit that keeps an unreachable store from costing a timeout per call."""

from __future__ import annotations

import pytest

from sibyl.cache import Backoff
from tests.contract.cache_support import ManualClock


def test_a_failure_refuses_calls_until_one_probe_is_due() -> None:
    clock = ManualClock()
    circuit = Backoff(1.0, 4.0, clock=clock)
    assert circuit.allow() and not circuit.is_open
    circuit.failure(OSError("down"))
    assert circuit.is_open and not circuit.allow()
    clock.advance(0.99)
    assert not circuit.allow()
    clock.advance(0.02)
    assert circuit.allow()  # the probe
    assert not circuit.allow()  # the others, while it runs
    circuit.success()
    assert not circuit.is_open and circuit.allow()


def test_failed_probes_double_the_wait_up_to_the_maximum() -> None:
    clock = ManualClock()
    circuit = Backoff(1.0, 4.0, clock=clock)
    circuit.failure(OSError())
    waits = []
    for _ in range(4):
        waited = 0.0
        while not circuit.allow():
            clock.advance(0.25)
            waited += 0.25
        waits.append(waited)
        circuit.failure(OSError())
    assert waits == [1.0, 2.0, 4.0, 4.0]
    clock.advance(4.0)
    assert circuit.allow()
    circuit.success()
    circuit.failure(OSError())  # a new outage starts from the initial wait again
    clock.advance(1.0)
    assert circuit.allow()


def test_failures_of_calls_that_started_before_the_opening_do_not_extend_it() -> None:
    clock = ManualClock()
    circuit = Backoff(1.0, 8.0, clock=clock)
    circuit.failure(OSError())
    circuit.failure(OSError())  # four threads timed out together: one outage, not four
    circuit.failure(OSError())
    clock.advance(1.0)
    assert circuit.allow()


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="0 < initial_s ≤ max_s"):
        Backoff(2.0, 1.0)
