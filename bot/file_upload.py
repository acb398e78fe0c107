"""Streams a file to the upload URL Slack hands out (files.getUploadURLExternal).

slack_sdk's own upload helper reads the whole file into memory before sending it; a result
file can be hundreds of megabytes, so here the bytes go from disk to the socket a chunk at a
time and `serve`'s memory stays flat whatever the file's size.
"""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path
from urllib.parse import urlsplit

CHUNK_BYTES = 1 << 20  # big enough to keep the socket busy, small next to serve's memory
ANSWER_MAX_BYTES = 4_096


class UploadFailed(Exception):
    """The upload URL refused the file; the message holds the HTTP status only."""


def stream_file(
    upload_url: str, path: Path, *, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> int:
    """POST the file's bytes to `upload_url` with a Content-Length; returns the bytes sent."""
    parts = urlsplit(upload_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UploadFailed(f"Slack gave an upload URL of an unexpected kind ({parts.scheme!r})")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname,
            parts.port,
            timeout=timeout,
            context=ssl_context or ssl.create_default_context(),
            blocksize=CHUNK_BYTES,
        )
    else:
        connection = http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=timeout, blocksize=CHUNK_BYTES
        )
    try:
        with path.open("rb") as body:
            length = path.stat().st_size
            # http.client sends a file object `blocksize` bytes at a time.
            connection.request(
                "POST",
                target,
                body=body,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(length),
                },
            )
        answer = connection.getresponse()
        answer.read(ANSWER_MAX_BYTES)
        if answer.status != 200:
            raise UploadFailed(f"the upload URL answered HTTP {answer.status}")
        return length
    finally:
        connection.close()


__all__ = ["CHUNK_BYTES", "UploadFailed", "stream_file"]
