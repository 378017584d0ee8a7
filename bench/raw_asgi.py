"""The ceiling: a raw ASGI app that reads the request body and answers a constant.

Run it as sibyl would be run, under uvicorn with uvloop + httptools and no access log:

    uvicorn raw_asgi:app --app-dir bench --loop uvloop --http httptools --no-access-log

Every path answers 200 with the same JSON body, so it also serves as its own readiness probe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b'{"predictions": [0]}'
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]


async def drain(receive: Receive) -> None:
    """Read the whole request body, as a real server must before it answers."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI entry point: HTTP only (lifespan events are acknowledged by uvicorn's 'auto')."""
    if scope["type"] != "http":
        return
    await drain(receive)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
