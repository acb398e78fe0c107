"""One result model for both engines, the file they stream it to, and the portal row's summary."""

from __future__ import annotations

import io
import json
import queue
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from isal import igzip

# The portal row keeps a preview that renders well under Slack's ~3,000-character section
# limit; the whole result travels as a file.
PREVIEW_MAX_ROWS = 20
PREVIEW_MAX_CHARS = 2_000
CELL_MAX_CHARS = 200

MB = 1024 * 1024
DEFAULT_MAX_RESULT_BYTES = 512 * MB
DEFAULT_COMPRESS_OVER_BYTES = 20 * MB
DEFAULT_UPLOAD_LIMIT_BYTES = 1024 * MB
# ISA-L's igzip (python-isal) writes the same gzip format as zlib: at its level 1 it compresses
# a CSV export about four times faster than zlib's fastest level, into a smaller file. The file is
# written while the rows stream in, so compression must keep up with the database.
GZIP_LEVEL = 1
GZIP_BLOCK_BYTES = 256 * 1024
# Blocks waiting for the compressing thread: enough to keep it busy while rows arrive, few
# enough to keep memory flat.
GZIP_QUEUED_BLOCKS = 4
# What may still be on its way to the compressed file (the blocks queued for the compressor, the
# one being filled, and what the compressor holds unflushed): the file is cut this far below the
# upload limit so that it stays under it once the last block is out.
GZIP_PENDING_BYTES = 1 * MB + (GZIP_QUEUED_BLOCKS + 1) * GZIP_BLOCK_BYTES
COPY_CHUNK_BYTES = 1 * MB


class ExecutionError(Exception):
    """Execution failed. `message` is the database's own message (never credentials).

    `partial` carries what ran before the failure (MongoDB scripts have no cross-statement
    rollback, so what already ran is reported).
    """

    def __init__(self, message: str, partial: ExecutionResult | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.partial = partial

    def __str__(self) -> str:
        return self.message


class AuthenticationFailed(ExecutionError):
    """The target refused the credentials: refresh the cached secret and try once more."""


@dataclass
class StatementOutcome:
    index: int  # 1-based position in the query or script
    text: str  # the statement, shortened for display
    kind: str  # read | write | ddl
    status: str = "ok"  # ok | failed | not run | rolled back
    rows: int | None = None  # rows returned (reads)
    affected: int | None = None  # rows inserted/updated/deleted (writes)
    detail: str | None = None  # e.g. "matched 3, modified 2" or the error

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class ExecutionResult:
    columns: list[str] = field(default_factory=list)
    preview_rows: list[list[Any]] = field(default_factory=list)  # first rows, JSON-safe
    row_count: int = 0  # rows written to the file (after the caps)
    truncated: bool = False  # a cap (rows, bytes, upload limit) stopped the file early
    statements: list[StatementOutcome] = field(default_factory=list)
    elapsed_ms: int = 0
    file_path: Path | None = None  # the full result (CSV for PostgreSQL, JSON lines for MongoDB)
    file_format: str | None = None  # csv | jsonl
    notes: list[str] = field(default_factory=list)
    compressed: bool = False  # file_path is gzip (.csv.gz / .jsonl.gz)
    content_bytes: int = 0  # the result's size before compression
    file_bytes: int = 0  # the size of file_path on disk (what is uploaded)
    truncation: str | None = None  # why the result stops early, in words, when truncated

    def attach_file(self, written: WrittenFile, row_count: int) -> None:
        """Make `written` the request's result file (a later read replaces an earlier one)."""
        self.row_count = row_count
        self.file_path = written.path
        self.file_format = written.file_format
        self.compressed = written.compressed
        self.content_bytes = written.content_bytes
        self.file_bytes = written.file_bytes
        self.truncated = written.truncation is not None
        self.truncation = written.truncation

    @property
    def affected(self) -> int:
        return sum(s.affected or 0 for s in self.statements)

    def summary(self) -> dict[str, Any]:
        """The bounded JSON kept in query_requests.execution_result."""
        rows: list[list[Any]] = []
        used = len(json.dumps(self.columns))
        for row in self.preview_rows[:PREVIEW_MAX_ROWS]:
            cells = [short_cell(cell) for cell in row]
            size = len(json.dumps(cells, default=str))
            if used + size > PREVIEW_MAX_CHARS:
                break
            rows.append(cells)
            used += size
        return {
            "columns": self.columns,
            "preview": rows,
            "row_count": self.row_count,
            "truncated": self.truncated,
            "statements": [s.to_json() for s in self.statements][:50],
            "elapsed_ms": self.elapsed_ms,
            "file_format": self.file_format,
            "notes": self.notes,
            "compressed": self.compressed,
            "content_bytes": self.content_bytes,
            "file_bytes": self.file_bytes,
            "truncation": self.truncation,
            # Some preview cell was cut: the preview is not the whole result, the file is.
            "preview_cut": any(
                isinstance(cell, str) and len(cell) == CELL_MAX_CHARS and cell.endswith("…")
                for row in self.preview_rows[:PREVIEW_MAX_ROWS]
                for cell in row
            ),
        }

    def summary_json(self) -> str:
        return json.dumps(self.summary(), default=str, ensure_ascii=False)


def short_cell(cell: Any) -> Any:
    """A preview cell: long text is cut, so twenty rows of huge values stay small in memory."""
    if isinstance(cell, str) and len(cell) > CELL_MAX_CHARS:
        return cell[: CELL_MAX_CHARS - 1] + "…"
    return cell


# --- the result file ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultLimits:
    """How big a result may grow, and when its file is compressed."""

    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES  # the result before compression
    compress_over_bytes: int = DEFAULT_COMPRESS_OVER_BYTES
    upload_limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES  # the file as uploaded


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    file_format: str  # csv | jsonl
    compressed: bool
    content_bytes: int
    file_bytes: int
    truncation: str | None  # why it stopped early, or None when it holds everything


class ResultWriter:
    """Streams one result to disk with flat memory, whatever its size.

    The file starts plain. Once its content passes `compress_over_bytes`, what was written is
    recompressed into a gzip file in chunks and the rest goes straight through gzip (nobody
    knows a result's size before it has been read). Whole records only: `write` refuses a
    record that would pass the byte cap or the upload limit, and the caller stops there.
    Everything goes to a side file that becomes the result only on `commit`, so a failure
    never leaves half a file behind.
    """

    def __init__(self, path: Path, file_format: str, limits: ResultLimits) -> None:
        self.path = path  # the plain name; ".gz" is added once compressed
        self.file_format = file_format
        self.limits = limits
        self.content_bytes = 0
        self.truncation: str | None = None
        self.compressed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._part = path.with_name(path.name + ".part")
        self._raw: BinaryIO = self._part.open("wb")
        self._out: BinaryIO = self._raw
        self._switch_at = limits.compress_over_bytes
        self._room = min(limits.max_result_bytes, limits.upload_limit_bytes)

    def write(self, record: bytes) -> bool:
        """Append one whole record (a CSV line, a JSON line); False once a limit stops it."""
        size = len(record)
        if self.content_bytes + size > self._room and not self._fits(size):
            return False
        self._out.write(record)
        self.content_bytes += size
        if self.content_bytes > self._switch_at and not self.compressed:
            self._compress()
        return True

    def lane(self) -> tuple[Callable[[Any], Any], int]:
        """A write function that skips every check, and how many bytes it may take.

        For loops of millions of small records: records go through the lane while they fit in
        its allowance (the caller reports them with `advance`), then through `write`, which
        finds out which threshold or limit is near, and the caller asks for a new lane.
        """
        limit = self._room if self.compressed else min(self._room, self._switch_at)
        return self._out.write, max(0, limit - self.content_bytes)

    def advance(self, size: int) -> None:
        """Count `size` bytes written through the lane."""
        self.content_bytes += size

    def _fits(self, size: int) -> bool:
        """Slow path near a limit: which one stops the record, if any."""
        limits = self.limits
        if self.content_bytes + size > limits.max_result_bytes:
            self.truncation = f"stopped at the result size cap of {_size(limits.max_result_bytes)}"
            return False
        if self.compressed:
            # Compressed bytes grow slower than content: measure again and move the mark on.
            self._room = min(limits.max_result_bytes, self.content_bytes + self._free_upload())
            if self.content_bytes + size <= self._room:
                return True
        elif self.content_bytes + size <= limits.upload_limit_bytes:
            return True
        self.truncation = (
            f"cut at Slack's upload limit of {_size(limits.upload_limit_bytes)} for one file"
        )
        return False

    def _compress(self) -> None:
        self._raw.close()
        gz_part = self._part.with_name(self.path.name + ".gz.part")
        raw = gz_part.open("wb")
        gz = igzip.IGzipFile(
            filename=self.path.name, mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw, mtime=0
        )
        # Records are a line each: handing the compressor one line per call costs four times the
        # compression itself, so they reach it in blocks, compressed by a thread of their own
        # while the next rows arrive.
        out = io.BufferedWriter(_CompressingThread(gz), GZIP_BLOCK_BYTES)
        with self._part.open("rb") as plain:
            shutil.copyfileobj(plain, out, COPY_CHUNK_BYTES)
        self._part.unlink()
        self._part, self._raw, self._out = gz_part, raw, out
        self.compressed = True
        self._room = min(self.limits.max_result_bytes, self.content_bytes + self._free_upload())

    def _free_upload(self) -> int:
        return max(0, self.limits.upload_limit_bytes - self._raw.tell() - GZIP_PENDING_BYTES)

    def stop(self, reason: str) -> None:
        """Mark the result cut short for a reason of the caller's (e.g. the row cap)."""
        self.truncation = self.truncation or reason

    def commit(self) -> WrittenFile:
        self._out.close()
        if self._out is not self._raw:
            self._raw.close()
        final = self.path.with_name(self.path.name + ".gz") if self.compressed else self.path
        self._part.replace(final)
        return WrittenFile(
            path=final,
            file_format=self.file_format,
            compressed=self.compressed,
            content_bytes=self.content_bytes,
            file_bytes=final.stat().st_size,
            truncation=self.truncation,
        )

    def discard(self) -> None:
        try:
            self._out.close()
            if self._out is not self._raw:
                self._raw.close()
        finally:
            self._part.unlink(missing_ok=True)


class _CompressingThread(io.RawIOBase):
    """A write-only stream that hands each block to a thread writing it into `gz`.

    igzip lets go of the GIL while it compresses, so the rows keep streaming in meanwhile. At
    most GZIP_QUEUED_BLOCKS wait; a failure in the thread comes back from the next write or
    from close().
    """

    def __init__(self, gz: BinaryIO) -> None:
        super().__init__()
        self._gz = gz
        self._blocks: queue.Queue[bytes | None] = queue.Queue(GZIP_QUEUED_BLOCKS)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dbquery-gzip", daemon=True)
        self._thread.start()

    def writable(self) -> bool:
        return True

    def write(self, block) -> int:  # type: ignore[override]
        self._raise_failure()
        self._blocks.put(bytes(block))  # the caller reuses its buffer
        return len(block)

    def close(self) -> None:
        if not self.closed:
            try:
                self._blocks.put(None)
                self._thread.join()
                self._gz.close()
            finally:
                super().close()
            self._raise_failure()

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            if self._failure is None:
                try:
                    self._gz.write(block)
                except BaseException as exc:  # handed to the writing thread
                    self._failure = exc

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure


def replace_result_file(result: ExecutionResult, written: WrittenFile, row_count: int) -> None:
    """Attach `written`, removing the file of an earlier read it replaces."""
    previous = result.file_path
    result.attach_file(written, row_count)
    if previous is not None and previous != written.path:
        previous.unlink(missing_ok=True)


def _size(n: int) -> str:
    if n >= 1024 * MB:
        return f"{n / (1024 * MB):,.1f} GB".replace(".0 GB", " GB")
    if n >= MB:
        return f"{n / MB:,.0f} MB"
    return f"{n:,} bytes"


def size_text(n: int) -> str:
    """A byte count in words people read (512 MB, 1 GB, 1.4 GB)."""
    return _size(n)
