"""Seeded generator of calendar events for the calendar-event classifier (use case 2).

Every event is drawn from the profile of its true class (``CLASS_PROFILES``): the start hour is
normal (sd 1.5 h), the duration log-normal, the weekday from a per-class distribution (weekends
are mostly personal and social), attendees are ``1 + Poisson(λ)``, recurrence is Bernoulli and
the location type categorical. The title has 2–5 tokens, each from the class's 30-word list with
probability 0.7, else from a shared 200-word list. Finally ``LABEL_NOISE`` (5 %) of the labels
are redrawn uniformly among all six classes — a sixth land back on the true one — so the expected
accuracy ceiling is ``1 - 0.05·5/6 ≈ 0.958``, as USE-CASES.md states.

Everything is a pure function of ``(n, seed)``: same arguments, same frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from sibyl.runtime import onnx_function
from sibyl.zoo.calendar._onnx import TIME_FEATURES_WIDTH, time_features_graph
from sibyl.zoo.calendar._vocab import (
    CLASS_WORDS,
    DESCRIPTION_CLOSERS,
    DESCRIPTION_OPENERS,
    SHARED_WORDS,
)

CLASSES: tuple[str, ...] = ("meeting", "focus", "one-on-one", "personal", "travel", "social")
"""The six labels, in the order of the ``category`` column's categories."""

LOCATION_TYPES: tuple[str, ...] = ("office", "video", "home", "external", "transit")
"""Categories of the ``location_type`` column (and of the one-hot columns of ``time_features``)."""

LABEL_NOISE = 0.05
"""Share of events whose label is flipped to another class."""

CLASS_WORD_PROBABILITY = 0.7
"""Probability that a title token comes from its class's word list rather than the shared one."""

START_HOUR_SD = 1.5
"""Standard deviation of the start hour, in hours, for every class."""

EPOCH = np.datetime64("2026-01-05T00:00", "m")
"""A Monday; events fall in the 52 weeks that follow."""

WEEKS = 52


@dataclass(frozen=True, slots=True)
class ClassProfile:
    """The generating parameters of one class (one row of ``CLASS_PROFILES``)."""

    start_hour: float
    """Mean of the normal start hour (sd ``START_HOUR_SD``), clipped to [0, 23.9]."""
    median_minutes: float
    """Median duration; the duration is ``exp(N(log(median), duration_sigma))`` minutes."""
    duration_sigma: float
    weekday_weights: tuple[float, float, float, float, float, float, float]
    """Unnormalised weights for Monday … Sunday."""
    attendees_lambda: float
    """Attendees are ``1 + Poisson(attendees_lambda)`` (the owner counts)."""
    recurrence: float
    """Probability that the event is recurring."""
    locations: dict[str, float]
    """Probabilities over ``LOCATION_TYPES`` (missing types have probability 0)."""


# fmt: off
CLASS_PROFILES: dict[str, ClassProfile] = {
    #                         hour median sigma  Mon  Tue  Wed  Thu  Fri  Sat   Sun     λ    recur
    "meeting":    ClassProfile(11.0,  45, 0.40, (1.0, 1.0, 1.0, 1.0, 0.8, 0.03, 0.02), 6.0,  0.50,
                               {"office": 0.45, "video": 0.45, "external": 0.10}),
    "focus":      ClassProfile( 9.5, 120, 0.35, (1.0, 1.0, 1.0, 1.0, 1.0, 0.05, 0.02), 0.05, 0.30,
                               {"office": 0.40, "home": 0.50, "video": 0.10}),
    "one-on-one": ClassProfile(14.0,  30, 0.25, (1.0, 1.0, 1.0, 1.0, 0.8, 0.01, 0.01), 1.0,  0.70,
                               {"office": 0.40, "video": 0.55, "external": 0.05}),
    "personal":   ClassProfile(17.0,  60, 0.60, (0.5, 0.5, 0.5, 0.5, 0.6, 1.5,  1.5),  0.3,  0.20,
                               {"external": 0.60, "home": 0.30, "video": 0.10}),
    "travel":     ClassProfile( 8.0, 150, 0.70, (1.0, 0.6, 0.6, 0.8, 1.2, 0.6,  1.0),  0.2,  0.05,
                               {"transit": 0.80, "external": 0.20}),
    "social":     ClassProfile(19.0, 120, 0.50, (0.3, 0.4, 0.5, 0.8, 1.2, 1.5,  1.2),  5.0,  0.10,
                               {"external": 0.75, "office": 0.15, "home": 0.10}),
}
# fmt: on
"""Per-class generating parameters (columns: start hour, median duration in minutes, duration
log-sd, weekday weights Mon–Sun, attendee Poisson λ, recurrence probability, locations)."""


def generate_events(n: int = 6000, seed: int = 0, *, return_clean: bool = False) -> pd.DataFrame:
    """Draw ``n`` events; the same ``(n, seed)`` always gives the same frame.

    Columns: ``title``, ``description`` (str), ``start``, ``end`` (datetime64), ``attendees``
    (int64), ``recurrence`` (bool), ``location_type`` (category over ``LOCATION_TYPES``) and
    ``category`` (category over ``CLASSES``, 5 % flipped). With ``return_clean=True`` a
    ``clean_category`` column holds the label before flipping (for tests of the noise level).
    Raises ``ValueError`` if ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    clean = rng.integers(len(CLASSES), size=n)
    columns = _draw_columns(rng, clean)
    noisy = _flip_labels(rng, clean, LABEL_NOISE)
    frame = pd.DataFrame(columns)
    frame["category"] = _categorical(noisy, CLASSES)
    if return_clean:
        frame["clean_category"] = _categorical(clean, CLASSES)
    return frame


@onnx_function(time_features_graph, width=TIME_FEATURES_WIDTH)
def time_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric features of the non-text columns, all float64, in a fixed column order.

    ``hour`` (fractional start hour), ``duration_min``, ``weekday`` (0 = Monday), ``weekend``
    (0/1), ``attendees``, ``recurrence`` (0/1) and one ``loc_<type>`` column per
    ``LOCATION_TYPES`` entry. Works on any frame with the columns of ``generate_events``.
    Its ONNX graph (served models): :func:`sibyl.zoo.calendar._onnx.time_features_graph`.
    """
    start = pd.to_datetime(frame["start"])
    end = pd.to_datetime(frame["end"])
    weekday = start.dt.weekday.to_numpy(dtype=np.float64)
    features = pd.DataFrame(
        {
            "hour": (start.dt.hour + start.dt.minute / 60.0).to_numpy(dtype=np.float64),
            "duration_min": ((end - start).dt.total_seconds() / 60.0).to_numpy(dtype=np.float64),
            "weekday": weekday,
            "weekend": (weekday >= 5).astype(np.float64),
            "attendees": frame["attendees"].to_numpy(dtype=np.float64),
            "recurrence": frame["recurrence"].to_numpy(dtype=np.float64),
        },
        index=frame.index,
    )
    locations = frame["location_type"].astype(str).to_numpy()
    for location in LOCATION_TYPES:
        features[f"loc_{location}"] = (locations == location).astype(np.float64)
    return features


def _draw_columns(rng: np.random.Generator, labels: npt.NDArray[np.int64]) -> dict[str, object]:
    n = len(labels)
    hours = np.empty(n)
    minutes = np.empty(n)
    weekdays = np.empty(n, dtype=np.int64)
    attendees = np.empty(n, dtype=np.int64)
    recurrence = np.empty(n, dtype=bool)
    locations = np.empty(n, dtype=np.int64)
    for index, name in enumerate(CLASSES):
        rows = np.flatnonzero(labels == index)
        profile = CLASS_PROFILES[name]
        hours[rows] = rng.normal(profile.start_hour, START_HOUR_SD, size=rows.size)
        log_median = np.log(profile.median_minutes)
        minutes[rows] = np.exp(rng.normal(log_median, profile.duration_sigma, size=rows.size))
        weights = np.asarray(profile.weekday_weights)
        weekdays[rows] = rng.choice(7, size=rows.size, p=weights / weights.sum())
        attendees[rows] = 1 + rng.poisson(profile.attendees_lambda, size=rows.size)
        recurrence[rows] = rng.random(rows.size) < profile.recurrence
        location_p = [profile.locations.get(location, 0.0) for location in LOCATION_TYPES]
        locations[rows] = rng.choice(len(LOCATION_TYPES), size=rows.size, p=location_p)
    start, end = _timestamps(rng, hours, minutes, weekdays)
    return {
        "title": [_title(rng, CLASSES[label]) for label in labels],
        "description": [_description(rng, CLASSES[label]) for label in labels],
        "start": start,
        "end": end,
        "attendees": attendees,
        "recurrence": recurrence,
        "location_type": _categorical(locations, LOCATION_TYPES),
    }


def _timestamps(
    rng: np.random.Generator, hours: np.ndarray, minutes: np.ndarray, weekdays: np.ndarray
) -> tuple[pd.Series, pd.Series]:
    """Start on a random week at the drawn weekday and hour (5-minute grid); end after the
    drawn duration (at least 5 minutes, on the same grid)."""
    weeks = rng.integers(WEEKS, size=len(hours))
    start_minute = np.round(np.clip(hours, 0.0, 23.9) * 12.0).astype(np.int64) * 5
    duration = np.maximum(np.round(minutes / 5.0).astype(np.int64) * 5, 5)
    offset = (weeks * 7 + weekdays) * 1440 + start_minute
    start = EPOCH + offset.astype("timedelta64[m]")
    end = start + duration.astype("timedelta64[m]")
    return (
        pd.Series(start.astype("datetime64[ns]"), name="start"),
        pd.Series(end.astype("datetime64[ns]"), name="end"),
    )


def _title(rng: np.random.Generator, label: str) -> str:
    own = CLASS_WORDS[label]
    tokens = []
    for _ in range(int(rng.integers(2, 6))):
        pool = own if rng.random() < CLASS_WORD_PROBABILITY else SHARED_WORDS
        tokens.append(pool[int(rng.integers(len(pool)))])
    return " ".join(tokens).capitalize()


def _description(rng: np.random.Generator, label: str) -> str:
    """One opener, one word (class word with probability 0.5, else shared), one closer."""
    pool = CLASS_WORDS[label] if rng.random() < 0.5 else SHARED_WORDS
    word = pool[int(rng.integers(len(pool)))]
    opener = DESCRIPTION_OPENERS[int(rng.integers(len(DESCRIPTION_OPENERS)))]
    closer = DESCRIPTION_CLOSERS[int(rng.integers(len(DESCRIPTION_CLOSERS)))]
    return f"{opener} {word} {closer}".strip()


def _flip_labels(
    rng: np.random.Generator, labels: npt.NDArray[np.int64], share: float
) -> npt.NDArray[np.int64]:
    """Redraw ``share`` of the labels uniformly from all classes (USE-CASES.md: a sixth of them
    land on the true class again, so the accuracy ceiling is 1 − share·5/6 ≈ 0.958)."""
    flip = rng.random(len(labels)) < share
    redrawn = rng.integers(0, len(CLASSES), size=len(labels))
    return np.where(flip, redrawn, labels).astype(np.int64)


def _categorical(codes: npt.NDArray[np.int64], categories: tuple[str, ...]) -> pd.Categorical[str]:
    return pd.Categorical.from_codes(codes.astype(np.int64), categories=pd.Index(categories))
