"""The prediction log: every prediction request, written to the store without ever delaying or
failing the request, spooled to local files while the store is down (replayed exactly once when
it returns), trimmed by a retention policy, and replayable against another version.

* :class:`PredictionLog` — the path's ``answered`` / ``failed`` calls, the writer, retention.
* :class:`SpoolingWriter` + :class:`Spool` — the generic buffered writer with a crash-safe
  spool (any record type with idempotent writes can use it).
* :func:`replay` — re-score logged requests against a version and compare.

Rows are :class:`sibyl.store.PredictionLogRecord` s (the layout of ``inputs`` and ``outputs`` is
documented there); docs/monitoring.md, "Prediction log", is the user guide.
"""

from sibyl.monitoring.predlog._context import note_cached_rows, take_cached_rows
from sibyl.monitoring.predlog._log import PredictionLog, wire_prediction_log
from sibyl.monitoring.predlog._render import Renderer, tabulate
from sibyl.monitoring.predlog._replay import MAX_LIMIT, ReplayReport, ReplaySpec, replay
from sibyl.monitoring.predlog._spool import Segment, Spool
from sibyl.monitoring.predlog._writer import Codec, Periodic, SpoolingWriter

__all__ = [
    "MAX_LIMIT",
    "Codec",
    "Periodic",
    "PredictionLog",
    "Renderer",
    "ReplayReport",
    "ReplaySpec",
    "Segment",
    "Spool",
    "SpoolingWriter",
    "note_cached_rows",
    "replay",
    "tabulate",
    "take_cached_rows",
    "wire_prediction_log",
]
