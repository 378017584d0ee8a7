"""ONNX graph builders of the calendar pipeline's Python functions (``event_text``,
``time_features``, ``hour_slots``), attached to them with :func:`sibyl.runtime.onnx_function`.

Date-times arrive as int64 nanoseconds since the epoch of the naive wall time (the builder
contract in :mod:`sibyl.runtime._onnx_functions`). Calendar fields come from integer floor
arithmetic, exact for any date: ``Mod`` with ``fmod=0`` on int64 takes the divisor's sign, so
the time of day is never negative, and the epoch (1970-01-01) was a Thursday, so the weekday
(Monday = 0) is ``(days + 3) mod 7``. Features are computed in float64 and cast to float32 once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sibyl.runtime import GraphBuilder

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR
TIME_FEATURES_WIDTH = 6 + 5
"""``hour, duration_min, weekday, weekend, attendees, recurrence`` + one per location type."""
HOUR_SLOTS = 12


def event_text_graph(graph: GraphBuilder, inputs: Sequence[str]) -> str:
    """``title + " " + description`` (string inputs, one string column out)."""
    title, description = inputs
    spaced = graph.node("StringConcat", [title, graph.constant(np.array(" ", dtype=object))])
    return graph.node("StringConcat", [spaced, description])


def time_features_graph(graph: GraphBuilder, inputs: Sequence[str]) -> str:
    """``time_features``' eleven columns, in its order, from ``start``, ``end`` (int64 ns),
    ``attendees`` (int64), ``recurrence`` (float32) and ``location_type`` (string)."""
    from sibyl.zoo.calendar.data import LOCATION_TYPES

    start, end, attendees, recurrence, location = inputs
    of_day = _time_of_day(graph, start)
    minute_of_day = graph.node("Div", [of_day, _int(graph, NS_PER_MINUTE)])
    hour = graph.node("Div", [minute_of_day, _int(graph, 60)])
    minute = graph.node("Mod", [minute_of_day, _int(graph, 60)], fmod=0)
    fraction = graph.node("Div", [graph.cast(minute, "float64"), _double(graph, 60.0)])
    days = graph.node("Div", [graph.node("Sub", [start, of_day]), _int(graph, NS_PER_DAY)])
    weekday_int = graph.node(
        "Mod", [graph.node("Add", [days, _int(graph, 3)]), _int(graph, 7)], fmod=0
    )
    weekday = graph.cast(weekday_int, "float64")
    weekend = graph.cast(graph.node("GreaterOrEqual", [weekday, _double(graph, 5.0)]), "float64")
    elapsed = graph.cast(graph.node("Sub", [end, start]), "float64")
    seconds = graph.node("Div", [elapsed, _double(graph, float(NS_PER_SECOND))])
    columns = [
        graph.node("Add", [graph.cast(hour, "float64"), fraction]),
        graph.node("Div", [seconds, _double(graph, 60.0)]),
        weekday,
        weekend,
        graph.cast(attendees, "float64"),
        graph.cast(recurrence, "float64"),
    ]
    for name in LOCATION_TYPES:
        same = graph.node("Equal", [location, graph.constant(np.array(name, dtype=object))])
        columns.append(graph.cast(same, "float64"))
    return graph.cast(graph.node("Concat", columns, axis=1), "float32")


def hour_slots_graph(graph: GraphBuilder, inputs: Sequence[str]) -> str:
    """One-hot (float32, ``HOUR_SLOTS`` columns) of the start hour's two-hour slot."""
    (start,) = inputs
    hour = graph.node("Div", [_time_of_day(graph, start), _int(graph, NS_PER_HOUR)])
    slot = graph.node("Div", [hour, _int(graph, 2)])
    slots = graph.constant(np.arange(HOUR_SLOTS, dtype=np.int64))
    return graph.cast(graph.node("Equal", [slot, slots]), "float32")


def _time_of_day(graph: GraphBuilder, stamps: str) -> str:
    """Nanoseconds since midnight (``Mod`` with ``fmod=0``: never negative)."""
    return graph.node("Mod", [stamps, _int(graph, NS_PER_DAY)], fmod=0)


def _int(graph: GraphBuilder, value: int) -> str:
    return graph.constant(np.array(value, dtype=np.int64))


def _double(graph: GraphBuilder, value: float) -> str:
    return graph.constant(np.array(value, dtype=np.float64))
