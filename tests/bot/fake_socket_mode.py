"""A Socket Mode server that refreshes connections as Slack does, and times acknowledgements.

Slack sends a `disconnect` message (reason `refresh_requested` every few hours, or `warning`
shortly before it drops a connection), keeps the old connection open a little while, then
closes it. Envelopes go to the newest open connection. The time from writing each envelope to
reading its acknowledgement is recorded here, on the server's side of the socket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.bot.fakeslack import FakeSlack

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class _Connection:
    sock: socket.socket
    number: int
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True


class RefreshingSocketModeServer:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._connections: list[_Connection] = []
        self.sent_at: dict[str, float] = {}
        self.acked_at: dict[str, float] = {}
        self.ack_connection: dict[str, int] = {}
        self.sent_on: dict[str, int] = {}
        self._changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}/link/?ticket=fake"

    @property
    def connections_opened(self) -> int:
        with self._changed:
            return len(self._connections)

    def stop(self) -> None:
        self._listener.close()
        with self._changed:
            for connection in self._connections:
                connection.open = False
                connection.sock.close()

    def wait_connections(self, count: int, timeout: float = 15) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._connections) >= count, timeout):
                raise AssertionError(f"the app did not open {count} Socket Mode connections")

    def send(self, kind: str, payload: dict[str, Any], accepts_response: bool = True) -> str:
        """One envelope on the newest open connection; returns its id."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": accepts_response,
            "payload": payload,
        }
        with self._changed:
            # After a connection dropped without warning, wait for the app to reconnect.
            self._changed.wait_for(lambda: any(c.open for c in self._connections), timeout=15)
            connection = next(c for c in reversed(self._connections) if c.open)
            self.sent_on[envelope_id] = connection.number
            self.sent_at[envelope_id] = time.perf_counter()
        self._write(connection, 0x1, json.dumps(envelope).encode())
        return envelope_id

    def refresh(self, reason: str, close_after_s: float) -> None:
        """Ask the app to reconnect, then close the connection it was asked to leave."""
        with self._changed:
            connection = next(c for c in reversed(self._connections) if c.open)
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
        self._write(connection, 0x1, json.dumps(message).encode())
        timer = threading.Timer(close_after_s, self._close, args=(connection,))
        timer.daemon = True
        timer.start()

    def drop(self) -> None:
        """Close the newest connection without warning, as a network failure would."""
        with self._changed:
            connection = next(c for c in reversed(self._connections) if c.open)
        self._close(connection)

    def wait_acks(self, envelope_ids: list[str], timeout: float = 15) -> None:
        with self._changed:
            self._changed.wait_for(lambda: all(e in self.acked_at for e in envelope_ids), timeout)

    def latencies(self, envelope_ids: list[str]) -> list[float]:
        with self._changed:
            return [self.acked_at[e] - self.sent_at[e] for e in envelope_ids if e in self.acked_at]

    # --- the protocol --------------------------------------------------------------------------

    def _close(self, connection: _Connection) -> None:
        with self._changed:
            connection.open = False
            self._changed.notify_all()
        try:
            self._write(connection, 0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        connection.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                return
            request += chunk
        key = next(
            line.split(":", 1)[1].strip()
            for line in request.decode().split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        with self._changed:
            connection = _Connection(sock, len(self._connections) + 1)
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0FAKE"}}
        self._write(connection, 0x1, json.dumps(hello).encode())
        with self._changed:
            self._connections.append(connection)
            self._changed.notify_all()
        try:
            self._read_frames(connection)
        except OSError:
            return

    def _read_frames(self, connection: _Connection) -> None:
        reader = connection.sock.makefile("rb")
        while True:
            head = reader.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", reader.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", reader.read(8))[0]
            mask = reader.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(reader.read(length)))
            if opcode == 0x9:  # ping
                self._write(connection, 0xA, data)
            elif opcode == 0x8:  # close
                return
            elif opcode == 0x1:
                now = time.perf_counter()
                message = json.loads(data)
                if "envelope_id" in message:
                    with self._changed:
                        self.acked_at.setdefault(message["envelope_id"], now)
                        self.ack_connection[message["envelope_id"]] = connection.number
                        self._changed.notify_all()

    def _write(self, connection: _Connection, opcode: int, data: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(data) < 126:
            header += bytes([len(data)])
        elif len(data) < 65_536:
            header += bytes([126]) + struct.pack("!H", len(data))
        else:
            header += bytes([127]) + struct.pack("!Q", len(data))
        with connection.send_lock:
            connection.sock.sendall(header + data)


class RefreshingSlack(FakeSlack):
    """The fake Web API, whose apps.connections.open hands out the refreshing server."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refreshing = RefreshingSocketModeServer()

    @property
    def socket_mode(self) -> RefreshingSocketModeServer:  # type: ignore[override]
        return self.refreshing

    def stop(self) -> None:
        super().stop()
        self.refreshing.stop()
