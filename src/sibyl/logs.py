"""Structured logging (structlog): JSON lines by default, one configuration for the process."""

from __future__ import annotations

import contextlib
import logging
import sys

import structlog

from sibyl.settings import LoggingSettings


class _Stderr:
    """``sys.stderr`` as it is when a line is written, not when logging was configured: a CLI
    runner or a test may swap it for a stream it closes later, and a log line must never raise
    (in a batcher's worker thread that would leave requests waiting forever)."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except ValueError:  # closed
            return sys.__stderr__.write(text) if sys.__stderr__ is not None else 0

    def flush(self) -> None:
        with contextlib.suppress(ValueError):
            sys.stderr.flush()


_STDERR = _Stderr()


def configure_logging(settings: LoggingSettings) -> None:
    """Route structlog and stdlib logging to stderr as JSON (or console) at ``settings.level``.

    Context bound with ``structlog.contextvars`` (the request id) is merged into every event.
    """
    level = logging.getLevelNamesMapping().get(settings.level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if settings.json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_STDERR),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=max(level, logging.WARNING),
        stream=_STDERR,  # type: ignore[arg-type]
        format="%(levelname)s %(name)s: %(message)s",
    )
