"""Socket Mode: Slack's payloads over a WebSocket the app opens, instead of HTTP requests.

Slack waits 3 seconds for an envelope's acknowledgement and delivers it again (or shows the
person an error) without one. Two properties matter, and slack_sdk's clients lack one or the
other: its built-in client blocks its message thread while it reconnects (and waits out a
fixed 3-second receive timeout on the old socket), the websocket-client and aiohttp ones close
the old connection before the new one is open, and Bolt's handler acknowledges only what a
listener answered with a 200. So this receiver:

* acknowledges every envelope, including kinds and events nobody listens for, and Events API
  envelopes (which carry no answer) as soon as they are read, before any listener runs;
* answers a `disconnect` (Slack refreshes every connection every few hours, and warns before
  it does) by opening the new connection first, on a thread of its own, while the old one is
  still read until Slack closes it: no envelope waits for a reconnection.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

from bot.intake import MAX_BODY_BYTES
from bot.payloads import Malformed, check_socket_payload

ENVELOPE_THREADS = 32
# Slack closes a connection it asked the app to leave after a few seconds; this only bounds how
# long a connection that Slack forgot to close is kept.
OLD_CONNECTION_KEPT_S = 60
RECONNECT_DELAYS_S = (1, 2, 5, 10, 30)

log = logging.getLogger("dbquery.socket_mode")


class SocketModeReceiver:
    """Reads envelopes from Slack's Socket Mode WebSocket and hands them to the Bolt app."""

    def __init__(
        self,
        app: App,
        app_token: str,
        client: WebClient,
        *,
        connector: Callable[[str], ClientConnection] | None = None,
    ) -> None:
        self.app = app
        self._token = app_token
        self._client = client
        self._connector = connector or _connect
        self._pool = ThreadPoolExecutor(ENVELOPE_THREADS, thread_name_prefix="dbquery-envelope")
        self._lock = threading.Lock()
        self._current: ClientConnection | None = None
        self._open: set[ClientConnection] = set()
        self._replacing = threading.Lock()
        self._closing = threading.Event()

    # --- life cycle ------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the first connection (SlackApiError when Slack refuses the app token)."""
        self._replace_connection()

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.close()
        self._pool.shutdown(wait=True)

    def _replace_connection(self, stale: ClientConnection | None = None) -> None:
        """Open a new connection and make it the one acknowledgements prefer; the old one is
        still read (Slack may have sent on it already) until Slack closes it.

        With `stale`, nothing happens if that connection was replaced meanwhile (a warning
        followed by Slack closing the same connection asks for one new connection, not two)."""
        with self._replacing:
            if self._closing.is_set() or (stale is not None and self._current is not stale):
                return
            url = self._client.apps_connections_open(app_token=self._token)["url"]
            connection = self._connector(url)
            with self._lock:
                old, self._current = self._current, connection
                self._open.add(connection)
            threading.Thread(
                target=self._read, args=(connection,), name="dbquery-socket", daemon=True
            ).start()
            if old is not None:
                timer = threading.Timer(OLD_CONNECTION_KEPT_S, old.close)
                timer.daemon = True
                timer.start()
            log.info("Socket Mode connection open")

    def _refresh(self, stale: ClientConnection) -> None:
        attempt = 0
        while not self._closing.is_set():
            try:
                self._replace_connection(stale)
                return
            except (SlackApiError, SlackClientError, OSError, WebSocketException) as exc:
                log.warning("Socket Mode: reconnecting failed (%s); trying again", _why(exc))
            delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
            attempt += 1
            if self._closing.wait(delay):
                return

    def _refresh_in_background(self, stale: ClientConnection) -> None:
        threading.Thread(
            target=self._refresh, args=(stale,), name="dbquery-socket-refresh", daemon=True
        ).start()

    # --- reading -----------------------------------------------------------------------------

    def _read(self, connection: ClientConnection) -> None:
        try:
            for raw in connection:
                self._received(connection, raw)
        except ConnectionClosed:
            pass
        except (OSError, WebSocketException) as exc:
            log.warning("Socket Mode connection failed: %s", _why(exc))
        finally:
            with self._lock:
                self._open.discard(connection)
                was_current = connection is self._current
            if was_current and not self._closing.is_set():
                log.info("Socket Mode connection closed unexpectedly; reconnecting")
                self._refresh_in_background(connection)

    def _received(self, connection: ClientConnection, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("Socket Mode: a message that is not JSON was ignored")
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "disconnect":
            reason = str(message.get("reason"))[:40]
            log.info("Slack asked for a new Socket Mode connection (%s)", reason)
            self._refresh_in_background(connection)
            return
        envelope_id = message.get("envelope_id")
        if not isinstance(envelope_id, str) or not envelope_id:
            return  # hello, and anything else that needs no acknowledgement
        payload = message.get("payload")
        if kind == "events_api" or not message.get("accepts_response_payload"):
            # Nothing can be said in the acknowledgement: give it now, then run the listener.
            self._acknowledge(connection, envelope_id)
            self._pool.submit(self._dispatch, str(kind), payload, None)
        else:
            self._pool.submit(self._dispatch, str(kind), payload, (connection, envelope_id))

    def _dispatch(
        self, kind: str, payload: Any, answer_on: tuple[ClientConnection, str] | None
    ) -> None:
        answer = None
        try:
            if check_socket_payload(kind, payload):
                response = self.app.dispatch(BoltRequest(body=payload, mode="socket_mode"))
                answer = _answer_of(response.status, response.body, response.headers)
        except Malformed as exc:
            log.info("Socket Mode: a %s envelope was refused: %s", kind[:40], exc)
        except Exception:
            log.exception("Socket Mode: handling a %s envelope failed", kind[:40])
        finally:
            if answer_on is not None:
                self._acknowledge(*answer_on, answer)

    def _acknowledge(
        self, connection: ClientConnection, envelope_id: str, payload: dict | None = None
    ) -> None:
        """On the connection the envelope came by, or the current one if that one is gone."""
        message = {"envelope_id": envelope_id}
        if payload:
            message["payload"] = payload
        text = json.dumps(message)
        with self._lock:
            current = self._current
        for candidate in (connection, current):
            if candidate is None:
                continue
            try:
                candidate.send(text)
                return
            except (ConnectionClosed, OSError):
                continue
        log.warning("Socket Mode: no open connection to acknowledge envelope %s", envelope_id)


def _answer_of(status: int, body: str, headers: dict[str, Any]) -> dict | None:
    """What Bolt's response says in an acknowledgement (nothing unless a listener said it)."""
    if status != 200 or not body:
        return None
    content_type = (headers.get("content-type") or [""])[0]
    if content_type.startswith("application/json"):
        try:
            answer = json.loads(body)
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None
    return {"text": body}


def _connect(url: str) -> ClientConnection:
    return connect(url, max_size=MAX_BODY_BYTES, open_timeout=10, close_timeout=2)


def _why(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "error"))
    return type(exc).__name__


__all__ = ["SocketModeReceiver"]
