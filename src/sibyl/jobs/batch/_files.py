"""Files of batch jobs on local disks or S3, through ``pyarrow.fs`` (one code path for both).

``s3://bucket/key`` uses ``pyarrow.fs.S3FileSystem`` (credentials from the AWS SDK's usual
chain; ``jobs.s3_endpoint_url`` for MinIO and other S3-compatible servers); anything else is a
local path (``file://`` accepted). Output part files are written under ``<output>/_tmp/`` and
moved to their final name when complete (a rename on disk, a server-side copy on S3), so a part
file is either absent or whole, whatever happens to the writer.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sibyl.errors import InvalidInputError, MissingExtraError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyarrow.fs import FileSystem

EXTENSIONS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
TMP_DIR = "_tmp"
MANIFEST = "_manifest.json"


@dataclass(frozen=True, slots=True)
class Location:
    """A path on a filesystem, and how a user wrote it."""

    fs: FileSystem
    path: str
    uri: str

    def join(self, name: str) -> str:
        """The path of ``name`` inside this directory."""
        return f"{self.path.rstrip('/')}/{name}"


@functools.lru_cache(maxsize=8)
def _s3(endpoint: str | None) -> FileSystem:
    from pyarrow.fs import S3FileSystem

    if not endpoint:
        return S3FileSystem()
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    return S3FileSystem(endpoint_override=parts.netloc, scheme=parts.scheme or "https")


def locate(uri: str, s3_endpoint: str | None, field: str) -> Location:
    """Where ``uri`` points; ``InvalidInputError`` naming ``field`` for an unsupported scheme,
    ``MissingExtraError`` without pyarrow."""
    try:
        from pyarrow.fs import LocalFileSystem
    except ImportError as exc:
        raise MissingExtraError("pyarrow", "jobs") from exc

    scheme = urlsplit(uri).scheme if "://" in uri else ""
    if scheme == "s3":
        path = uri[len("s3://") :].rstrip("/")
        if not path or path.startswith("/"):
            raise InvalidInputError(f"'{field}': write s3://bucket/key, got {uri!r}", field=field)
        return Location(_s3(s3_endpoint), path, uri)
    if scheme not in ("", "file"):
        raise InvalidInputError(
            f"'{field}': scheme '{scheme}' is not supported; use a local path, file://… or "
            "s3://bucket/key",
            field=field,
        )
    from pathlib import Path

    local = urlsplit(uri).path if scheme == "file" else uri
    return Location(LocalFileSystem(), str(Path(local).expanduser().resolve()), uri)


def format_of(path: str, given: str | None, field: str = "input_format") -> str:
    """The file format: ``given``, else from the extension of ``path``."""
    if given:
        return given
    fmt = EXTENSIONS.get(PurePosixPath(path).suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"'{field}': cannot tell the format of {path!r} from its extension; set "
            "input_format to csv, parquet or jsonl",
            field=field,
        )
    return fmt


def input_files(loc: Location, fmt: str | None) -> list[tuple[str, int]]:
    """``(path, size)`` of the input: the file itself, or the files of a directory with the
    format's extensions (names starting with ``_`` or ``.`` skipped), in name order."""
    from pyarrow.fs import FileSelector, FileType

    info = loc.fs.get_file_info(loc.path)
    if info.type == FileType.NotFound:
        raise InvalidInputError(f"'input': {loc.uri} does not exist", field="input")
    if info.type == FileType.File:
        return [(loc.path, int(info.size or 0))]
    listing = loc.fs.get_file_info(FileSelector(loc.path, recursive=False))
    files = sorted(
        (i.path, int(i.size or 0))
        for i in listing
        if i.type == FileType.File
        and not i.base_name.startswith(("_", "."))
        and _matches(i.path, fmt)
    )
    if not files:
        raise InvalidInputError(
            f"'input': the directory {loc.uri} holds no {fmt or 'csv, parquet or jsonl'} file",
            field="input",
        )
    return files


def _matches(path: str, fmt: str | None) -> bool:
    found = EXTENSIONS.get(PurePosixPath(path).suffix.lower())
    return found is not None if fmt is None else found == fmt


def resolve_input(loc: Location, given: str | None) -> tuple[str, list[tuple[str, int]]]:
    """The input's format and files (a directory's files of that format only)."""
    files = input_files(loc, given)
    fmt = format_of(files[0][0], given)
    return fmt, [f for f in files if len(files) == 1 or _matches(f[0], fmt)]


def check_output(loc: Location, overwrite: bool) -> None:
    """``InvalidInputError`` when ``output`` is a file, or a directory that holds files and
    ``overwrite`` is off."""
    from pyarrow.fs import FileSelector, FileType

    info = loc.fs.get_file_info(loc.path)
    if info.type == FileType.File:
        raise InvalidInputError(
            f"'output': {loc.uri} is a file; name a directory for the part files", field="output"
        )
    if info.type == FileType.Directory and not overwrite:
        held = loc.fs.get_file_info(FileSelector(loc.path, recursive=False))
        if held:
            raise InvalidInputError(
                f"'output': {loc.uri} already holds {len(held)} entries; pick a new directory "
                "or set overwrite",
                field="output",
            )


@contextlib.contextmanager
def atomic_output(loc: Location, name: str) -> Iterator[pa.NativeFile]:
    """A stream that becomes ``<loc>/<name>`` only when the block completes."""
    tmp = loc.join(f"{TMP_DIR}/{name}.{uuid.uuid4().hex[:12]}.tmp")
    loc.fs.create_dir(loc.join(TMP_DIR), recursive=True)
    try:
        with loc.fs.open_output_stream(tmp) as stream:
            yield stream
        loc.fs.move(tmp, loc.join(name))
    except BaseException:
        with contextlib.suppress(Exception):
            loc.fs.delete_file(tmp)
        raise


def write_bytes(loc: Location, name: str, data: bytes) -> None:
    """Write a small file atomically (the manifest)."""
    with atomic_output(loc, name) as stream:
        stream.write(data)


def remove_tmp(loc: Location) -> None:
    """Delete ``<loc>/_tmp`` (left-overs of killed writers)."""
    with contextlib.suppress(Exception):
        loc.fs.delete_dir(loc.join(TMP_DIR))
