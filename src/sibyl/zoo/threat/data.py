"""Seeded generator of short security-event descriptions (use case 4).

Each event is one line in the style of an alert or log message ("Multiple failed SSH logins for
user admin from 10.2.3.4"). For a row of true class ``c``:

* the frame is a class-specific template of ``c`` or, with probability ``GENERIC_TEMPLATE``, a
  template shared by all classes;
* the ``{sig}`` slot is an indicator of ``c`` or, with probability ``AMBIGUOUS_INDICATOR``, a
  class-free one ("anomalous activity") — a generic frame with such an indicator carries no
  class information at all;
* the other slots (users, hosts, paths, IPs, ports …) come from vocabularies shared by all
  classes;
* finally ``LABEL_NOISE`` of the labels are replaced by a different class.

With the defaults about 4 % of rows are uninformative and 4 % mislabelled, which puts the
accuracy ceiling near 0.92. Everything is a pure function of ``(n, seed)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sibyl.zoo.threat._templates import (
    AMBIGUOUS_INDICATORS,
    CLASS_TEMPLATES,
    CLASSES,
    GENERIC_TEMPLATES,
    INDICATORS,
    SHARED_SLOTS,
)

LABEL_NOISE = 0.04
"""Share of events whose label is flipped to another class."""

GENERIC_TEMPLATE = 0.4
"""Probability that an event uses a template shared by all classes."""

AMBIGUOUS_INDICATOR = 0.1
"""Probability that the ``{sig}`` slot holds a class-free indicator."""


def generate_events(n: int = 6000, seed: int = 0, *, return_clean: bool = False) -> pd.DataFrame:
    """Draw ``n`` labelled event descriptions; the same ``(n, seed)`` gives the same frame.

    Columns: ``text`` (str) and ``category`` (category over ``CLASSES``, ``LABEL_NOISE``
    flipped). With ``return_clean=True`` a ``clean_category`` column holds the label before
    flipping. Classes are drawn uniformly. Raises ``ValueError`` if ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    clean = rng.integers(len(CLASSES), size=n)
    texts = [_event_text(rng, CLASSES[label]) for label in clean]
    flip = rng.random(n) < LABEL_NOISE
    shift = rng.integers(1, len(CLASSES), size=n)
    noisy = np.where(flip, (clean + shift) % len(CLASSES), clean).astype(np.int64)
    frame = pd.DataFrame({"text": texts})
    frame["category"] = pd.Categorical.from_codes(noisy, categories=pd.Index(CLASSES))
    if return_clean:
        frame["clean_category"] = pd.Categorical.from_codes(clean, categories=pd.Index(CLASSES))
    return frame


def _event_text(rng: np.random.Generator, label: str) -> str:
    generic = rng.random() < GENERIC_TEMPLATE
    template = _pick(rng, GENERIC_TEMPLATES if generic else CLASS_TEMPLATES[label])
    ambiguous = rng.random() < AMBIGUOUS_INDICATOR
    sig = _pick(rng, AMBIGUOUS_INDICATORS if ambiguous else INDICATORS[label])
    slots = {name: _pick(rng, values) for name, values in SHARED_SLOTS.items()}
    slots["ip"] = _ip(rng)
    slots["n"] = str(int(rng.integers(2, 5000)))
    text = template.format(sig=sig, **slots)
    return text[0].upper() + text[1:]


def _pick(rng: np.random.Generator, values: tuple[str, ...]) -> str:
    return values[int(rng.integers(len(values)))]


def _ip(rng: np.random.Generator) -> str:
    """A private or documentation-range address, so no real host is named."""
    first = _pick(rng, ("10", "192.168", "172.16", "203.0.113", "198.51.100"))
    rest = rng.integers(1, 255, size=4 - first.count(".") - 1)
    return ".".join([first, *(str(int(octet)) for octet in rest)])
