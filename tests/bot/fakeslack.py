"""A fake Slack Web API on loopback, answering like Slack does and recording every call.

The bot reaches it through SLACK_API_URL. Besides the Web API methods it serves the other
URLs Slack hands out: the upload URLs of files.getUploadURLExternal (a real HTTP endpoint that
writes what it receives to disk as it arrives, so a test's memory does not grow with the file),
url_private_download of files people attach, and response_url webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

# Slack's documented limits that a real workspace enforces on what the bot sends.
MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
MESSAGE_TEXT_MAX = 40_000
SECTION_TEXT_MAX = 3_000
LIMITS = {
    "block_id": 255,
    "header": 150,
    "fields": 10,
    "field": 2_000,
    "context_elements": 10,
    "actions_elements": 25,
    "button_text": 75,
    "button_value": 2_000,
    "options": 100,
    "option_text": 75,
    "option_value": 150,
}


@dataclass
class Call:
    method: str  # a Web API method, or "response_url" / "upload" / "download"
    args: dict[str, Any]
    headers: dict[str, str]
    path: str = ""
    answer: dict[str, Any] = field(default_factory=dict)  # what the fake answered (Web API)
    status: int = 200  # the HTTP status answered (Web API)
    at: float = field(default_factory=time.monotonic)  # when it was answered


UPLOAD_CHUNK = 1 << 20


@dataclass
class Upload:
    file_id: str
    filename: str
    length: int  # as announced to files.getUploadURLExternal
    path: Path | None = None  # the bytes received at the upload URL
    size: int = 0  # bytes received
    received_at: float | None = None  # time.monotonic() when the last byte arrived
    channel_id: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    completed: bool = False
    completed_at: float | None = None  # time.monotonic() of files.completeUploadExternal

    @property
    def data(self) -> bytes:
        return self.path.read_bytes() if self.path is not None else b""

    def sha256(self) -> str:
        """Of the bytes received, read back from disk (not while receiving: that would slow
        the upload being measured)."""
        digest = hashlib.sha256()
        if self.path is not None:
            with self.path.open("rb") as received:
                for chunk in iter(lambda: received.read(UPLOAD_CHUNK), b""):
                    digest.update(chunk)
        return digest.hexdigest()


@dataclass
class _Fault:
    times: int
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    where: Callable[[dict[str, Any]], bool] | None = None


class FakeSlack:
    def __init__(self, bot_token: str = "xoxb-fake-token", team_id: str = "T0FAKE") -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.emails: dict[str, str] = {}  # Slack user id -> profile email (users.info)
        self.calls: list[Call] = []
        self.uploads: dict[str, Upload] = {}
        self.files: dict[str, tuple[str, bytes]] = {}  # file id -> (name, bytes) to download
        self._faults: dict[str, list[_Fault]] = {}
        self._held: dict[str, threading.Event] = {}
        self._socket_mode: SocketModeServer | None = None
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._spool = Path(tempfile.mkdtemp(prefix="fakeslack-uploads-"))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- life cycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        return self.root + "api/"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._spool, ignore_errors=True)
        if self._socket_mode is not None:
            self._socket_mode.stop()

    @property
    def socket_mode(self) -> SocketModeServer:
        """The Socket Mode WebSocket server apps.connections.open hands out (started on demand)."""
        with self._changed:
            if self._socket_mode is None:
                self._socket_mode = SocketModeServer()
            return self._socket_mode

    def reset(self) -> None:
        with self._changed:
            self.calls.clear()
            self._faults.clear()

    # --- what tests set up -------------------------------------------------------------------

    def response_url(self, name: str = "r") -> str:
        return f"{self.root}respond/{name}-{next(self._ids)}"

    def add_file(self, name: str, content: bytes, filetype: str = "text") -> dict[str, Any]:
        """Store a file as if a person had attached it; returns the file_input file object."""
        file_id = f"F{next(self._ids):08d}"
        self.files[file_id] = (name, content)
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": "text/plain",
            "filetype": filetype,
            "size": len(content),
            "url_private": f"{self.root}files/{file_id}/{name}",
            "url_private_download": f"{self.root}files/{file_id}/download/{name}",
        }

    def hold_downloads(self, file_id: str) -> Callable[[], None]:
        """Make downloads of a file wait until the returned function is called."""
        gate = threading.Event()
        self._held[file_id] = gate
        return gate.set

    def rate_limit(
        self,
        method: str,
        times: int = 1,
        retry_after: int = 1,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer `method` with 429 and Retry-After the next `times` calls (whose arguments
        satisfy `where`, when given)."""
        self._add_fault(
            method,
            _Fault(
                times,
                429,
                {"ok": False, "error": "ratelimited"},
                {"Retry-After": str(retry_after)},
                where=where,
            ),
        )

    def fail(
        self,
        method: str,
        error: str,
        times: int = 1,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer {"ok": false, "error": error} to the next `times` calls of `method` (whose
        arguments satisfy `where`, when given)."""
        self._add_fault(method, _Fault(times, 200, {"ok": False, "error": error}, where=where))

    def _add_fault(self, method: str, fault: _Fault) -> None:
        with self._changed:
            self._faults.setdefault(method, []).append(fault)

    # --- what tests look at ------------------------------------------------------------------

    def calls_to(self, method: str, where: Callable[[Call], bool] | None = None) -> list[Call]:
        with self._changed:
            return [c for c in self.calls if c.method == method and (where is None or where(c))]

    def wait_for(
        self,
        method: str,
        where: Callable[[Call], bool] | None = None,
        count: int = 1,
        timeout: float = 15,
    ) -> list[Call]:
        """Block until at least `count` matching calls were recorded (or fail at the deadline)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [
                    c for c in self.calls if c.method == method and (where is None or where(c))
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({c.method for c in self.calls})
                    raise AssertionError(
                        f"expected {count} call(s) to {method}, got {len(found)} "
                        f"within {timeout}s; methods seen: {seen}"
                    )
                self._changed.wait(left)

    def _record(self, call: Call) -> None:
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def _take_fault(self, method: str, args: dict[str, Any]) -> _Fault | None:
        with self._changed:
            for fault in self._faults.get(method, []):
                if fault.where is None or fault.where(args):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults[method].remove(fault)
                    return fault
            return None

    # --- the Web API -------------------------------------------------------------------------

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._ids):06d}"

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(args)

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "dbquery",
            "team_id": self.team_id,
            "user_id": "UBOT",
            "bot_id": "BBOT",
        }

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.socket_mode.url}

    def _message_problem(self, args: dict[str, Any]) -> str | None:
        if not args.get("channel"):
            return "channel_not_found"
        blocks = args.get("blocks")
        if not args.get("text") and not blocks:
            return "no_text"
        if blocks is not None and (
            not isinstance(blocks, list) or len(blocks) > MESSAGE_MAX_BLOCKS
        ):
            return "invalid_blocks"
        if len(args.get("text") or "") > MESSAGE_TEXT_MAX:
            return "msg_too_long"
        return _blocks_problem(blocks or [])

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        problem = self._message_problem(args)
        if problem:
            return {"ok": False, "error": problem}
        ts = self._ts()
        message = {"text": args.get("text", ""), "ts": ts, "blocks": args.get("blocks", [])}
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": message}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("ts"):
            return {"ok": False, "error": "message_not_found"}
        problem = self._message_problem(args)
        if problem:
            return {"ok": False, "error": problem}
        return {"ok": True, "channel": args["channel"], "ts": args["ts"], "text": args.get("text")}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        problem = self._message_problem(args)
        if problem:
            return {"ok": False, "error": problem}
        return {"ok": True, "message_ts": self._ts()}

    def _m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users") or "")
        if not users or "," in users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": "D" + users}}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("user") or "")
        if not user.startswith(("U", "W")):
            return {"ok": False, "error": "user_not_found"}
        profile = {"real_name": f"Person {user}"}
        if user in self.emails:
            profile["email"] = self.emails[user]
        return {"ok": True, "user": {"id": user, "name": user.lower(), "profile": profile}}

    def _m_users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any]:
        email = str(args.get("email") or "").lower()
        for user, known in self.emails.items():
            if known.lower() == email:
                return {"ok": True, "user": {"id": user, "profile": {"email": known}}}
        return {"ok": False, "error": "users_not_found"}

    def _view(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            return {"ok": False, "error": "invalid_arguments"}
        blocks = view.get("blocks") or []
        if len(blocks) > VIEW_MAX_BLOCKS or _blocks_problem(blocks):
            return {"ok": False, "error": "invalid_arguments"}
        if view["type"] == "modal" and len(view.get("title", {}).get("text", "")) > 24:
            return {"ok": False, "error": "invalid_arguments"}
        view_id = args.get("view_id") or f"V{next(self._ids):08d}"
        return {"ok": True, "view": {**view, "id": view_id, "hash": f"h{next(self._ids)}"}}

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        return self._view(args)

    def _m_views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._view(args)

    def _m_views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._view(args)

    def _m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user_id"):
            return {"ok": False, "error": "invalid_arguments"}
        return self._view(args)

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length") or "").isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):08d}"
        with self._changed:
            self.uploads[file_id] = Upload(file_id, args["filename"], int(args["length"]))
        return {"ok": True, "upload_url": f"{self.root}upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        done = []
        with self._changed:
            for item in files or []:
                upload = self.uploads.get(item.get("id"))
                if upload is None or upload.size != upload.length or upload.completed:
                    return {"ok": False, "error": "file_not_found"}
                upload.channel_id = args.get("channel_id")
                upload.thread_ts = args.get("thread_ts")
                upload.initial_comment = args.get("initial_comment")
                upload.completed = True
                upload.completed_at = time.monotonic()
                done.append({"id": upload.file_id, "title": item.get("title") or upload.filename})
        return {"ok": True, "files": done}

    # --- HTTP --------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

            def do_POST(self) -> None:
                path = urlparse(self.path).path
                headers = {k.lower(): v for k, v in self.headers.items()}
                if path.startswith("/upload/"):
                    self._upload(path.rsplit("/", 1)[-1], headers)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if path.startswith("/api/"):
                    self._api(path[len("/api/") :], body, headers)
                elif path.startswith("/respond/"):
                    args = json.loads(body or b"{}")
                    fake._record(Call("response_url", args, headers, path))
                    self._send(200, b"ok", "text/plain")
                else:
                    self._send(404, b"not found", "text/plain")

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                headers = {k.lower(): v for k, v in self.headers.items()}
                parts = path.strip("/").split("/")
                if len(parts) >= 3 and parts[0] == "files" and parts[1] in fake.files:
                    fake._record(Call("download", {"file": parts[1]}, headers, path))
                    gate = fake._held.get(parts[1])
                    if gate is not None:
                        gate.wait(timeout=30)
                    if headers.get("authorization") != f"Bearer {fake.bot_token}":
                        # Slack answers a login page, not the file, without the bot token.
                        self._send(200, b"<html>sign in</html>", "text/html")
                        return
                    self._send(200, fake.files[parts[1]][1], "application/octet-stream")
                else:
                    self._send(404, b"not found", "text/plain")

            def _api(self, method: str, body: bytes, headers: dict[str, str]) -> None:
                args = _parse_args(body, headers.get("content-type", ""), self.path)
                status, answer, extra = self._answer(method, args, headers)
                # Recorded with its answer, before the app can see the answer.
                fake._record(Call(method, args, headers, self.path, answer, status))
                self._json(status, answer, extra)

            def _answer(
                self, method: str, args: dict[str, Any], headers: dict[str, str]
            ) -> tuple[int, dict[str, Any], dict[str, str]]:
                fault = fake._take_fault(method, args)
                if fault is not None:
                    return fault.status, fault.body, fault.headers
                token = headers.get("authorization", "").removeprefix("Bearer ")
                token = token or str(args.get("token") or "")
                # apps.connections.open takes the app-level token, everything else the bot's.
                if method == "apps.connections.open":
                    authorised = token.startswith("xapp-")
                else:
                    authorised = token == fake.bot_token
                if not authorised:
                    return 200, {"ok": False, "error": "invalid_auth"}, {}
                return 200, fake.answer(method, args), {}

            def _upload(self, file_id: str, headers: dict[str, str]) -> None:
                """Receives the body a chunk at a time (Content-Length or chunked) to disk."""
                with fake._changed:
                    upload = fake.uploads.get(file_id)
                target = fake._spool / f"{file_id}-{next(fake._ids)}"
                size = 0
                with target.open("wb") as out:
                    for chunk in self._body_chunks(headers):
                        out.write(chunk)
                        size += len(chunk)
                fake._record(Call("upload", {"file_id": file_id, "size": size}, headers, self.path))
                if upload is None:
                    target.unlink()
                    self._send(404, b"unknown upload", "text/plain")
                    return
                with fake._changed:
                    upload.path, upload.size = target, size
                    upload.received_at = time.monotonic()
                self._send(200, f"OK - {size}".encode(), "text/plain")

            def _body_chunks(self, headers: dict[str, str]) -> Iterator[bytes]:
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return
                        left = size
                        while left:
                            chunk = self.rfile.read(min(left, UPLOAD_CHUNK))
                            if not chunk:
                                return
                            left -= len(chunk)
                            yield chunk
                        self.rfile.readline()
                left = int(headers.get("content-length") or 0)
                while left:
                    chunk = self.rfile.read(min(left, UPLOAD_CHUNK))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk

            def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None):
                self._send(status, json.dumps(payload).encode(), "application/json", headers)

            def _send(
                self,
                status: int,
                body: bytes,
                content_type: str,
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _parse_args(body: bytes, content_type: str, path: str) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        args = json.loads(body or b"{}")
    else:
        args = {k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()}
    for key, values in parse_qs(urlparse(path).query).items():
        args.setdefault(key, values[-1])
    # Form-encoded calls carry structured arguments as JSON strings, as Slack accepts them.
    for key in ("blocks", "view", "attachments"):
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                pass
    return args


def _blocks_problem(blocks: list[Any]) -> str | None:
    """The first way `blocks` break Slack's documented Block Kit limits, or None."""
    for block in blocks:
        if not isinstance(block, dict) or "type" not in block:
            return "invalid_blocks"
        problem = _block_problem(block)
        if problem:
            return f"invalid_blocks: {problem}"
    return None


def _text_of(value: Any) -> str:
    return value.get("text", "") if isinstance(value, dict) else ""


def _block_problem(block: dict[str, Any]) -> str | None:
    kind = block["type"]
    if len(block.get("block_id") or "") > LIMITS["block_id"]:
        return "block_id too long"
    if kind == "header" and len(_text_of(block.get("text"))) > LIMITS["header"]:
        return "header text over 150"
    if kind == "section":
        if len(_text_of(block.get("text"))) > SECTION_TEXT_MAX:
            return "section text over 3000"
        fields = block.get("fields") or []
        if len(fields) > LIMITS["fields"] or any(
            len(_text_of(f)) > LIMITS["field"] for f in fields
        ):
            return "too many or too long fields"
    if kind == "context":
        elements = block.get("elements") or []
        if not elements or len(elements) > LIMITS["context_elements"]:
            return "context elements"
    if kind == "actions" and len(block.get("elements") or []) > LIMITS["actions_elements"]:
        return "more than 25 actions"
    for element in [block.get("accessory"), block.get("element"), *block.get("elements", [])]:
        problem = _element_problem(element) if isinstance(element, dict) else None
        if problem:
            return problem
    return None


def _element_problem(element: dict[str, Any]) -> str | None:
    if element.get("type") == "button":
        if len(_text_of(element.get("text"))) > LIMITS["button_text"]:
            return "button text over 75"
        if len(element.get("value") or "") > LIMITS["button_value"]:
            return "button value over 2000"
    groups = element.get("option_groups") or []
    if len(groups) > LIMITS["options"]:
        return "more than 100 option groups"
    lists = [element.get("options") or [], *(g.get("options") or [] for g in groups)]
    if any(len(group) > LIMITS["options"] for group in lists):
        return "more than 100 options in a menu or group"
    if any(len(_text_of(g.get("label"))) > LIMITS["option_text"] for g in groups):
        return "option group label over 75"
    for option in (option for group in lists for option in group):
        if len(_text_of(option.get("text"))) > LIMITS["option_text"]:
            return "option text over 75"
        if len(option.get("value") or "") > LIMITS["option_value"]:
            return "option value over 150"
    return None


# --- Socket Mode -------------------------------------------------------------------------------

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class SocketModeServer:
    """The WebSocket end of Socket Mode (plain ws:// on loopback, as slack_sdk allows for tests).

    Sends envelopes the way Slack does and records the app's acknowledgements.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._clients: list[socket.socket] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self._changed = threading.Condition()
        self._send_lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}/link/?ticket=fake"

    def stop(self) -> None:
        self._listener.close()
        with self._changed:
            for client in self._clients:
                client.close()

    def wait_connected(self, timeout: float = 15) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._clients, timeout=timeout):
                raise AssertionError("the app did not connect over Socket Mode")

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        """Send one envelope (slash_commands, interactive, events_api); returns its id."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "payload": payload,
        }
        with self._changed:
            client = self._clients[-1]
        self._write(client, 0x1, json.dumps(envelope).encode())
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 15) -> dict[str, Any]:
        with self._changed:
            if not self._changed.wait_for(lambda: envelope_id in self.acks, timeout=timeout):
                raise AssertionError(f"no acknowledgement of envelope {envelope_id}")
            return self.acks[envelope_id]

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = client.recv(4096)
            if not chunk:
                return
            request += chunk
        key = next(
            line.split(":", 1)[1].strip()
            for line in request.decode().split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        client.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0FAKE"}}
        self._write(client, 0x1, json.dumps(hello).encode())
        with self._changed:
            self._clients.append(client)
            self._changed.notify_all()
        try:
            self._read_frames(client)
        except OSError:
            return

    def _read_frames(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
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
                self._write(client, 0xA, data)
            elif opcode == 0x8:  # close
                return
            elif opcode == 0x1:
                message = json.loads(data)
                if "envelope_id" in message:
                    with self._changed:
                        self.acks[message["envelope_id"]] = message
                        self._changed.notify_all()

    def _write(self, client: socket.socket, opcode: int, data: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(data) < 126:
            header += bytes([len(data)])
        elif len(data) < 65_536:
            header += bytes([126]) + struct.pack("!H", len(data))
        else:
            header += bytes([127]) + struct.pack("!Q", len(data))
        with self._send_lock:
            client.sendall(header + data)
