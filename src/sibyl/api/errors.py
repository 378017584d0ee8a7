"""The one table mapping ``SibylError`` classes to HTTP, and each protocol's error body."""

from __future__ import annotations

import orjson

from sibyl.errors import (
    BackendUnavailableError,
    CircuitOpenError,
    ConflictError,
    DeadlineExceededError,
    InvalidInputError,
    MissingExtraError,
    ModelLoadError,
    NotFoundError,
    NotReadyError,
    OverloadedError,
    PayloadTooLargeError,
    PredictionError,
    SibylError,
    UnsupportedMediaTypeError,
)

# most specific first
STATUS: tuple[tuple[type[SibylError], int, str], ...] = (
    (PayloadTooLargeError, 413, "PAYLOAD_TOO_LARGE"),
    (InvalidInputError, 400, "INVALID_INPUT"),
    (UnsupportedMediaTypeError, 415, "UNSUPPORTED_MEDIA_TYPE"),
    (NotFoundError, 404, "NOT_FOUND"),
    (ConflictError, 409, "CONFLICT"),
    (NotReadyError, 503, "NOT_READY"),
    (OverloadedError, 429, "OVERLOADED"),
    (DeadlineExceededError, 504, "DEADLINE_EXCEEDED"),
    (CircuitOpenError, 503, "CIRCUIT_OPEN"),
    (BackendUnavailableError, 503, "BACKEND_UNAVAILABLE"),
    (ModelLoadError, 500, "MODEL_LOAD_FAILED"),
    (PredictionError, 500, "PREDICTION_FAILED"),
    (MissingExtraError, 500, "MISSING_EXTRA"),
    (SibylError, 500, "INTERNAL_ERROR"),
)
# MLflow scoring protocol error codes by status
MLFLOW_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    409: "BAD_REQUEST",
    429: "RESOURCE_EXHAUSTED",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    500: "INTERNAL_ERROR",
}


def classify(exc: SibylError) -> tuple[int, str]:
    """HTTP status and sibyl code of an error."""
    for cls, status, code in STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "INTERNAL_ERROR"


def error_headers(exc: SibylError) -> dict[str, str]:
    """Extra headers an error carries (``Retry-After`` on 429 and on an open circuit's 503)."""
    if isinstance(exc, (OverloadedError, CircuitOpenError)):
        return {"retry-after": str(int(max(1, exc.retry_after)))}
    return {}


def native_body(exc: SibylError, request_id: str) -> bytes:
    """sibyl's own error shape."""
    _, code = classify(exc)
    body: dict[str, object] = {"error": exc.message, "code": code, "request_id": request_id}
    if isinstance(exc, InvalidInputError) and exc.field:
        body["field"] = exc.field
    return orjson.dumps(body)


def v2_body(exc: SibylError, request_id: str) -> bytes:
    """Open Inference Protocol: ``{"error": "<message>"}``."""
    return orjson.dumps({"error": exc.message})


def mlflow_body(exc: SibylError, request_id: str) -> bytes:
    """MLflow scoring protocol: ``{"error_code", "message"}``."""
    status, _ = classify(exc)
    return orjson.dumps(
        {"error_code": MLFLOW_CODES.get(status, "INTERNAL_ERROR"), "message": exc.message}
    )
