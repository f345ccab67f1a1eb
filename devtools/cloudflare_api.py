"""A local stand-in for the part of Cloudflare's API a publish uses, answering as Cloudflare documents it.

No Cloudflare server runs here, so the tests point the official library at
this one (CLOUDFLARE_BASE_URL). Each behaviour, with its source:

- every answer is Cloudflare's envelope, `{"success", "errors", "messages", "result"}`
  (developers.cloudflare.com/fundamentals/api/);
- `Authorization: Bearer <token>`; an unknown token gets 401 with code 1000
  "Invalid API Token" from GET /user/tokens/verify, and 403 with code 10000
  "Authentication error" elsewhere (API token troubleshooting page);
- GET /zones/{id}: a zone it does not have gets 400, code 7003 "Could not route
  to /zones/…, perhaps your object identifier is invalid?";
- POST /zones/{id}/purge_cache with exactly one of `files`, `prefixes` or
  `purge_everything`; more than 100 items gets 400 (Purge cache: "Max
  operations per request: 100"); a token bucket of 25 refilled at 5 a minute,
  the Free plan's limits, and 429 with Retry-After past it (Purge cache:
  "Cloudflare uses token bucket rate limiting").
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devtools import loopback

MAX_ITEMS = 100
BUCKET = 25
REFILL_PER_S = 5 / 60
KINDS = ("files", "prefixes", "purge_everything")


@dataclass
class Purge:
    zone: str
    kind: str  # "files", "prefixes" or "purge_everything"
    items: list[str]


@dataclass
class CloudflareApi:
    token: str
    zones: set[str]
    bucket: float = BUCKET
    refill_per_s: float = REFILL_PER_S
    down: bool = False  # purges get no answer: the connection is dropped, as when the network is down
    purges: list[Purge] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # the status of each purge request, in order
    _last: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/client/v4"

    def start(self) -> CloudflareApi:
        self._server = loopback.serve(_handler_for(self))
        return self

    def stop(self) -> None:
        loopback.shut(self._server)

    def purged(self) -> list[str]:
        """Every URL and prefix purged, in order; `*` for a purge of everything."""
        return [item for purge in self.purges for item in (purge.items or ["*"])]

    def drain(self, refill_per_s: float) -> None:
        """An empty bucket from now on, refilled at this rate: the next purges wait."""
        with self._lock:
            self.bucket, self.refill_per_s, self._last = 0, refill_per_s, time.monotonic()

    def take_token(self) -> float:
        """0 when a purge may go now; else the seconds until the bucket has a token again."""
        with self._lock:
            now = time.monotonic()
            self.bucket = min(BUCKET, self.bucket + (now - self._last) * self.refill_per_s)
            self._last = now
            if self.bucket >= 1:
                self.bucket -= 1
                return 0.0
            return (1 - self.bucket) / self.refill_per_s


def _envelope(result: Any = None, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"success": not errors, "errors": errors or [], "messages": [], "result": result}


def _handler_for(api: CloudflareApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _error(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
            self._answer(status, _envelope(errors=[{"code": code, "message": message}]), headers)

        def _authorised(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {api.token}"

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/client/v4/user/tokens/verify":
                if not self._authorised():
                    return self._error(401, 1000, "Invalid API Token")
                return self._answer(200, _envelope({"id": "token", "status": "active"}))
            if not self._authorised():
                return self._error(403, 10000, "Authentication error")
            zone = re.fullmatch(r"/client/v4/zones/([^/]+)", path)
            if zone and zone[1] in api.zones:
                return self._answer(200, _envelope({"id": zone[1], "name": "example.com", "status": "active"}))
            return self._error(400, 7003, f"Could not route to {path}, perhaps your object identifier is invalid?")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if api.down:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            zone = re.fullmatch(r"/client/v4/zones/([^/]+)/purge_cache", self.path.split("?")[0])
            if not self._authorised():
                return self._error(403, 10000, "Authentication error")
            if zone is None or zone[1] not in api.zones:
                return self._error(
                    400, 7003, f"Could not route to {self.path}, perhaps your object identifier is invalid?"
                )
            status = self._purge(zone[1], json.loads(body or b"{}"))
            api.answers.append(status)

        def _purge(self, zone: str, request: dict[str, Any]) -> int:
            kinds = [kind for kind in KINDS if kind in request]
            if len(kinds) != 1 or (kinds == ["purge_everything"] and request["purge_everything"] is not True):
                self._error(
                    400, 1012, "Request must contain one of 'purge_everything', 'files', 'tags', 'hosts' or 'prefixes'"
                )
                return 400
            items = [] if kinds == ["purge_everything"] else request[kinds[0]]
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                self._error(400, 1012, f"{kinds[0]} must be a list of strings")
                return 400
            if len(items) > MAX_ITEMS:
                self._error(400, 1015, f"Purge requests are limited to {MAX_ITEMS} operations")
                return 400
            wait = api.take_token()
            if wait:
                self._error(
                    429,
                    971,
                    "Please wait and consider throttling your request speed",
                    {"Retry-After": str(math.ceil(wait))},
                )
                return 429
            api.purges.append(Purge(zone, kinds[0], items))
            self._answer(200, _envelope({"id": zone}))
            return 200

    return Handler
