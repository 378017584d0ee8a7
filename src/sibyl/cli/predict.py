"""``sibyl predict``: a one-off prediction from a JSON or CSV file, in-process or via a server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from sibyl.cli._common import fail, out, progress_status, settings_from
from sibyl.errors import InvalidInputError, SibylError


def predict(
    model: str,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="JSON (native body or a list of records) or CSV."
        ),
    ],
    version: Annotated[str | None, typer.Option(help="Version number or alias.")] = None,
    url: Annotated[
        str | None, typer.Option(help="Use this server instead of loading the model in-process.")
    ] = None,
) -> None:
    """Predict the rows of a file and print the response as JSON."""
    try:
        body = _read(file)
        if url:
            result = _remote(url, model, version, body)
        else:
            with progress_status(f"loading {model}"):
                result = asyncio.run(_local(model, version, body))
    except SibylError as exc:
        raise fail(exc) from None
    out.print_json(data=result)


def _read(file: Path) -> dict[str, Any]:
    """A native predict body from a file."""
    from sibyl.api.codecs import loads

    if file.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.read_csv(file)
        return {"records": frame.to_dict(orient="records")}
    data = loads(file.read_bytes(), f"file {file}")
    if isinstance(data, list):
        return {"records": data}
    if isinstance(data, dict):
        return data
    raise InvalidInputError(f"{file} must hold a JSON object or a list of records", field="file")


def _remote(url: str, model: str, version: str | None, body: dict[str, Any]) -> Any:
    from sibyl.client import Client, SibylHTTPError

    kwargs: dict[str, Any] = {k: v for k, v in body.items() if k in ("records", "columns", "rows")}
    if version:
        kwargs["version" if version.isdigit() else "alias"] = version
    try:
        with Client(url) as client:
            return client.predict(model, **kwargs)
    except SibylHTTPError as exc:
        raise fail(exc) from None


async def _local(model: str, version: str | None, body: dict[str, Any]) -> Any:
    import orjson

    from sibyl.api.codecs import Meta
    from sibyl.api.codecs import native as codec
    from sibyl.service import build_container

    settings = settings_from()
    settings.runtime.preload_all_production = False
    settings.registry.watch_interval_s = 0
    container = build_container(settings)
    await container.start()
    try:
        meta = Meta("cli")
        req = codec.decode(orjson.dumps(body), "application/json", model, version, meta)
        result = await container.service.predict(req)
        return orjson.loads(codec.encode(result, meta))
    finally:
        await container.stop()
