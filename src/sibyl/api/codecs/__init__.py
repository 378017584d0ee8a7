"""Protocol codecs: bytes in → ``PredictRequest``; ``PredictResult`` → bytes out.

Each codec module offers ``decode(body, content_type, model, ref, meta) -> PredictRequest``,
``encode(result, meta) -> bytes`` and ``error(exc, request_id) -> bytes``.
"""

from sibyl.api.codecs._common import Meta, json_value, loads

__all__ = ["Meta", "json_value", "loads"]
