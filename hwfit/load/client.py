"""A lean HTTP/1.1 client on asyncio protocols, for sending load: keep-alive connections to one
host, each request's bytes built once, the response read to its end (Content-Length or chunked).

Why not aiohttp's client: the generator usually shares the machine with the server it measures, and
on a 2-core machine aiohttp's ~0.7 ms of CPU per request is taken from the server (Triton's
perf_analyzer is C++ for the same reason). This one costs a fraction of that (bench/results/load.md).
Only the bodies of answers other than 200 are kept (up to MAX_KEPT_BODY_BYTES): they carry the
server's reason for a refusal or an error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
MAX_KEPT_BODY_BYTES = 16 * 1024


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client understands."""


@dataclass(frozen=True)
class Answer:
    """How one request ended: the HTTP status (0 when there was no response), the body of a
    non-200 response (for its reason), or the failure's kind when there was no response."""

    status: int
    body: bytes = b""
    failure: str = ""  # "timeout", "ConnectionRefusedError", ... when status == 0


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time: `send(raw)` -> (status, kept body) once the
    whole response has arrived."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future | None = None
        self._status = 0
        self._body_left: int | None = None  # bytes of body still to come; None: chunked
        self._in_body = False
        self._keep_alive = True
        self._kept = bytearray()

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(cls, host, port)
        return connection

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, raw: bytes) -> asyncio.Future:
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("one request at a time on a connection")
        self._waiter = asyncio.get_running_loop().create_future()
        self._in_body = False
        self._kept = bytearray()
        self.transport.write(raw)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except (ProtocolError, ValueError) as error:  # ValueError: a length that is not a number
            self._finish(ProtocolError(str(error)))
            self.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionResetError("the server closed the connection mid-response"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # --- parsing

    def _parse(self) -> None:
        if not self._in_body:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    raise ProtocolError("response headers too long")
                return
            self._read_head(bytes(self._buffer[:end]).decode("latin-1"))
            del self._buffer[: end + 4]
            self._in_body = True
        if self._body_left is not None:
            if len(self._buffer) < self._body_left:
                return
            self._keep(self._buffer[: self._body_left])
            del self._buffer[: self._body_left]
            self._finish(None)
        else:
            self._parse_chunks()

    def _keep(self, data) -> None:
        if self._status != 200 and len(self._kept) < MAX_KEPT_BODY_BYTES:
            self._kept += data[: MAX_KEPT_BODY_BYTES - len(self._kept)]

    def _read_head(self, head: str) -> None:
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line[:80]!r}")
        self._status = int(parts[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self._keep_alive = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._body_left = None
        elif "content-length" in headers:
            self._body_left = int(headers["content-length"])
        elif self._status in (204, 304) or 100 <= self._status < 200:
            self._body_left = 0
        else:
            raise ProtocolError("a response with neither Content-Length nor chunked encoding")

    def _parse_chunks(self) -> None:
        while True:
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self._buffer[:line_end]).split(b";")[0], 16)
            if size == 0:  # last chunk, then (no trailers here) an empty line
                if len(self._buffer) < line_end + 4:
                    return
                del self._buffer[: line_end + 4]
                self._finish(None)
                return
            if len(self._buffer) < line_end + 2 + size + 2:
                return
            self._keep(self._buffer[line_end + 2 : line_end + 2 + size])
            del self._buffer[: line_end + 2 + size + 2]

    def _finish(self, error: Exception | None) -> None:
        self._in_body = False
        if not self._keep_alive:
            self.close()
        if self._waiter is not None and not self._waiter.done():
            if error is None:
                self._waiter.set_result((self._status, bytes(self._kept)))
            else:
                self._waiter.set_exception(error)


class Target:
    """POSTs to one URL over reused connections: idle ones are reused, a broken one is replaced.
    `bodies` are cycled: request i sends bodies[i % len(bodies)]."""

    def __init__(self, url: str, headers: dict[str, str], bodies: list[bytes] | tuple[bytes, ...]):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}"]
        head += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
        self.requests = [
            ("\r\n".join(head + [f"Content-Length: {len(body)}"]) + "\r\n\r\n").encode() + body for body in bodies
        ]
        self._idle: deque[HttpConnection] = deque()
        self._open: set[HttpConnection] = set()

    async def post(self, index: int, timeout_s: float) -> Answer:
        """Send request `index` (modulo the bodies) and wait for its whole answer, at most timeout_s."""
        connection = None
        try:
            connection = await self._connection()
            status, body = await asyncio.wait_for(connection.send(self.requests[index % len(self.requests)]), timeout_s)
            answer = Answer(status, body)
        except asyncio.TimeoutError:
            answer = Answer(0, failure="timeout")
        except (OSError, ProtocolError, ValueError) as error:
            answer = Answer(0, failure=type(error).__name__)
        except asyncio.CancelledError:
            if connection is not None:
                self._discard(connection)
            raise
        if connection is not None:
            if not connection.closed and answer.status:
                self._idle.append(connection)
            else:
                self._discard(connection)  # timed out mid-response, or broken: never reused
        return answer

    async def _connection(self) -> HttpConnection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        connection = await HttpConnection.open(self.host, self.port)
        self._open.add(connection)
        return connection

    def _discard(self, connection: HttpConnection) -> None:
        connection.close()
        self._open.discard(connection)

    def close(self) -> None:
        """Close every connection, idle or busy (outstanding requests have been cancelled)."""
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
