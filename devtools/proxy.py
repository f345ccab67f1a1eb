"""An HTTP proxy on loopback that records every S3 request, adds latency and injects faults.

Tests use it to see what really crossed the wire (a PUT with a body, a
server-side copy, a delete, the headers sent) and to break the wire (error
answers, resets, stalls, answers cut mid-body); the benchmark uses it to
simulate a WAN round trip, since this kernel has no netem.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import http.client
import re
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from devtools import loopback
from devtools.stores import Seen, StoreProfile
from pelican_s3_publish.manifest import PROBE_FOLDER, PROBE_NAME, PROBE_ORDER, RESERVED_NAMES

PROBE_KEYS = (PROBE_NAME, PROBE_FOLDER, *PROBE_ORDER)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}
NOT_RECORDED = {"authorization"}
DELETE_REFUSED = (
    b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Error><Key>%s</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>"
)
XML_ETAG = re.compile(rb"(<ETag>(?:&quot;|&#34;|\")?)([0-9a-fA-F-]+)")

# What a fault hook may answer: an HTTP status (with an S3 error code, or the
# default InjectedFault), "reset" (drop the connection without an answer),
# "stall" (wait `stall_s`, then forward), "cut" (forward, then send only half
# the answer's body and drop the connection), "corrupt" (flip the first byte
# of the request body on its way, as a faulty middlebox or disk would),
# "refuse-first-delete" (forward a DeleteObjects, then answer that its first
# key was refused with AccessDenied, as S3 does per key under a bucket policy),
# "lost-answer" (forward, so the server does the work, then drop the connection
# before the client hears the answer).
Fault = int | tuple[int, str] | Literal["reset", "stall", "cut", "corrupt", "refuse-first-delete", "lost-answer"]


@dataclass(frozen=True)
class Request:
    method: str
    key: str  # the path after the bucket, unquoted
    query: str
    body_bytes: int
    copy_source: str | None
    status: int
    headers: dict[str, str]  # lowercase names, the credentials left out
    refused_by: str | None = None  # the store profile's rule that answered instead of the server
    deleted: tuple[str, ...] = ()  # the keys a DeleteObjects named

    @property
    def is_probe(self) -> bool:
        """A request of the probe that asks a store what it does (its object, written and removed)."""
        return all(key.endswith(PROBE_KEYS) for key in self.deleted or (self.key,))


@dataclass
class Proxy:
    upstream: str
    latency_s: float = 0.0
    # Called with (method, key) before forwarding; a Fault replaces the forwarding.
    fault: Callable[[str, str], Fault | None] | None = None
    stall_s: float = 0.0
    # For keys it accepts, answer ETags that are not the MD5 of the bytes, as
    # AWS does under SSE-KMS. (An ETag the client sends back in If-Match must
    # stay real: the header is signed, so it cannot be translated back.)
    opaque_etags: Callable[[str], bool] | None = None
    # Speak TLS to clients with this context (a TLS front for a plain server, or an HTTPS proxy).
    tls: ssl.SSLContext | None = None
    # Answer as a store's documentation says it answers (`devtools.stores`): refuse, or ignore headers.
    profile: StoreProfile | None = None
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Proxy:
        self._server = loopback.serve(_handler_for(self), self.tls)
        return self

    def stop(self) -> None:
        loopback.shut(self._server)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def writes(self) -> list[Request]:
        """Requests that change the bucket."""
        with self._lock:
            return [r for r in self.requests if r.method in ("PUT", "POST", "DELETE")]

    def put_bodies(self) -> list[Request]:
        """PUTs that carried bytes of a file (not a copy, not the manifest, not the store's probe)."""
        return [
            r
            for r in self.writes()
            if r.method == "PUT" and r.copy_source is None and not r.key.endswith(RESERVED_NAMES)
        ]

    def opaque(self, etag: str) -> str:
        """A stable stand-in for a server ETag."""
        return hashlib.md5(b"opaque:" + etag.encode()).hexdigest()


def _split(path: str) -> tuple[str, str]:
    parsed = urllib.parse.urlsplit(path)
    parts = parsed.path.lstrip("/").split("/", 1)
    key = urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
    return key, parsed.query


def _handler_for(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    upstream = urllib.parse.urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A header and a short body written one after the other must not wait for the
        # client's delayed ACK (40 ms on Linux): no real S3 endpoint stalls like that.
        disable_nagle_algorithm = True
        upstream_conn: http.client.HTTPConnection | None = None

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _upstream(self) -> http.client.HTTPConnection:
            if self.upstream_conn is None:
                self.upstream_conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
            return self.upstream_conn

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            key, query = _split(self.path)
            if proxy.latency_s:
                time.sleep(proxy.latency_s)
            rule = proxy.profile.rule_for(self._seen(key, query)) if proxy.profile else None
            if rule is not None and rule.refusal is not None:
                status = self._answer_fault(rule.refusal.status, rule.refusal.code, rule.refusal.message)
                self._record(key, query, body, status, rule.what)
                return
            for name in rule.ignores if rule is not None else ():
                del self.headers[name]
            fault = proxy.fault(self.command, key) if proxy.fault else None

            def recorded(status: int) -> None:
                """Before the client has the answer: what it does next cannot come before this record."""
                self._record(key, query, body, status)

            if fault == "stall":
                time.sleep(proxy.stall_s)
            if fault == "corrupt" and body:
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            if fault == "reset":
                self._reset()
                status = 0
            elif fault == "lost-answer":
                self._forward(body, recorded, lose_answer=True)
                return
            elif isinstance(fault, (int, tuple)):
                status = self._answer_fault(*(fault if isinstance(fault, tuple) else (fault, "InjectedFault")))
            else:
                try:
                    self._forward(body, recorded, cut=fault == "cut", refuse_first=fault == "refuse-first-delete")
                    return
                except (http.client.HTTPException, OSError):  # the server is gone: so is the client's connection
                    self._reset()
                    status = 0
            self._record(key, query, body, status)

        def _seen(self, key: str, query: str) -> Seen:
            return Seen(self.command, key, query, {k.lower(): v for k, v in self.headers.items()})

        def _record(self, key: str, query: str, body: bytes, status: int, refused_by: str | None = None) -> None:
            headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in NOT_RECORDED}
            copy_source = headers.get("x-amz-copy-source")
            deleted = tuple(html.unescape(k.decode()) for k in re.findall(rb"<Key>(.*?)</Key>", body))
            request = Request(self.command, key, query, len(body), copy_source, status, headers, refused_by, deleted)
            proxy.record(request)

        def _reset(self) -> None:
            """Close with a TCP reset, as a crashed server or a middlebox does."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _answer_fault(self, status: int, code: str, message: str = "injected by the test proxy") -> int:
            payload = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return status

        def _forward(
            self,
            body: bytes,
            recorded: Callable[[int], None],
            cut: bool = False,
            refuse_first: bool = False,
            lose_answer: bool = False,
        ) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection = self._upstream()
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
            except (http.client.HTTPException, OSError):
                connection.close()
                self.upstream_conn = None
                raise
            payload = response.read()
            recorded(response.status)
            if lose_answer:
                self._reset()
                return
            if refuse_first and response.status == 200 and (first := re.search(rb"<Key>(.*?)</Key>", body)):
                payload = DELETE_REFUSED % first[1]
            key, _ = _split(self.path)
            opaque = proxy.opaque_etags is not None and proxy.opaque_etags(key)
            if opaque:
                payload = XML_ETAG.sub(lambda m: m[1] + proxy.opaque(m[2].decode()).encode(), payload)
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() == "etag" and opaque:
                    value = f'"{proxy.opaque(value.strip(chr(34)))}"'
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            length = response.getheader("Content-Length", "0") if self.command == "HEAD" else len(payload)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if self.command != "HEAD":
                # The client may be gone (a test killed it); the server did the work.
                with contextlib.suppress(OSError):
                    self.wfile.write(payload[: len(payload) // 2] if cut else payload)
            if cut:
                self._reset()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

    return Handler
