"""The one exception tree of sibyl.

Every failure a caller can act on is a :class:`SibylError`; ``sibyl.api`` maps each class to an
HTTP status in one table (``api/errors.py``) and formats it in the protocol's own error shape::

    SibylError                      (500 when nothing more specific applies)
    ├── InvalidInputError           400  bad field, type, shape, NaN, empty input, bad JSON
    │   └── PayloadTooLargeError    413  body over the configured size limit
    ├── UnsupportedMediaTypeError   415  a content type the protocol does not speak
    ├── NotFoundError               404  unknown model, version, alias
    ├── ConflictError               409  a state change that contradicts the current state
    │   └── PromotionRefusedError   409  a promotion gate said no
    ├── NotReadyError               503  model still loading / warming
    ├── OverloadedError             429  a bounded queue is full (carries ``retry_after``)
    ├── DeadlineExceededError       504  the request's deadline passed before an answer
    ├── BackendUnavailableError     503  registry / database / cache cannot be reached
    │   └── CircuitOpenError        503  a version's circuit breaker is open (``retry_after``)
    ├── ModelLoadError              500  a version could not be loaded (previous one keeps serving)
    ├── PredictionError             500  the model raised at predict time (that request only)
    └── MissingExtraError           500  an optional dependency is missing (names the pip command)

Messages name the thing and say what to do next.
"""

from __future__ import annotations


class SibylError(Exception):
    """Base of every error sibyl raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(SibylError):
    """The caller sent something malformed; ``field`` names the offending part when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLargeError(InvalidInputError):
    """The request body is larger than ``server.max_body_bytes``."""


class UnsupportedMediaTypeError(SibylError):
    """The request's content type is not one the protocol accepts."""


class NotFoundError(SibylError):
    """A model, version or alias does not exist."""


class ConflictError(SibylError):
    """The requested change contradicts the current state."""


class PromotionRefusedError(ConflictError):
    """A promotion gate refused the candidate (its metric is worse than production's)."""


class NotReadyError(SibylError):
    """The model exists but is not loaded and warm yet."""


class OverloadedError(SibylError):
    """A bounded queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceededError(SibylError):
    """The request's deadline passed before the model answered."""


class BackendUnavailableError(SibylError):
    """A backend (registry, database, cache) cannot be reached."""


class CircuitOpenError(BackendUnavailableError):
    """A version's circuit breaker is open and no fallback answered; retry after
    ``retry_after`` seconds (when the circuit half-opens)."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelLoadError(SibylError):
    """A model version could not be loaded or warmed."""


class PredictionError(SibylError):
    """The model raised while predicting."""


class MissingExtraError(SibylError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with `pip install 'sibyl[{extra}]'`"
        )
        self.package = package
        self.extra = extra
