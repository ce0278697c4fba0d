"""A real HTTP API on 127.0.0.1 for the API extractors' tests: every paginator, auth, 429, flaky and broken pages."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGE = 3  # records per page


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class ApiState:
    """What the API serves and what it was asked; tests change it between runs."""

    records: list[dict[str, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    token: str = ""  # bearer token /auth/* accepts
    api_key: str = ""
    basic: tuple[str, str] = ("", "")
    fail_times: int = 0  # /flaky: answer 429 (Retry-After) this many times first
    retry_after: str = "1"
    fail_status: int = 429
    delay: float = 0.0  # /cursor: seconds each page takes
    broken_page: int | None = None  # /cursor: this page (from 0), /paged: (from 1) answers 500
    pages: list[list[dict[str, Any]]] = field(default_factory=list)  # what /paged serves
    gate: threading.Event | None = None  # /paged: the last page waits for it (at most 10 s)
    gate_was_open: bool | None = None  # whether it was set when the last page was asked for
    lock: threading.Lock = field(default_factory=threading.Lock)

    def since(self, query: dict[str, str]) -> list[dict[str, Any]]:
        since = query.get("updated_since")
        rows = sorted(self.records, key=lambda r: (r["updated_at"], r["id"]))
        return [r for r in rows if since is None or r["updated_at"] > since]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        """GraphQL: {query, variables}; a page of `items` after variables.after, since
        variables.since; query "broken" answers with GraphQL errors."""
        api = self.server.api
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        variables = request.get("variables") or {}
        with api.lock:
            api.seen.append(
                Seen(self.path, variables, {k.lower(): v for k, v in self.headers.items()})
            )
        if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
            self._send(401, {"errors": [{"message": "bad credentials"}]})
            return
        if "broken" in request.get("query", ""):
            self._send(200, {"data": None, "errors": [{"message": "Field 'nope' doesn't exist"}]})
            return
        rows = api.since({"updated_since": variables["since"]} if "since" in variables else {})
        start = int(variables.get("after") or 0)
        first = int(variables.get("first", PAGE))
        chunk = rows[start : start + first]
        more = start + first < len(rows)
        edges = [{"node": {**r, "meta": {"rank": r["id"] * 10}}} for r in chunk]
        info = {"hasNextPage": more, "endCursor": str(start + first) if more else None}
        self._send(200, {"data": {"items": {"edges": edges, "pageInfo": info}}})

    def do_GET(self) -> None:
        api = self.server.api
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with api.lock:
            api.seen.append(Seen(url.path, query, {k.lower(): v for k, v in self.headers.items()}))
        route = getattr(self, "_" + url.path.strip("/").replace("/", "_"), None)
        if route is None:
            self._send(404, {"message": f"no route {url.path}"})
            return
        route(query)

    def _window(self, query: dict[str, str]) -> list[dict[str, Any]]:
        return self.server.api.since(query)

    # -- paginators ---------------------------------------------------------------------------
    def _cursor(self, query: dict[str, str]) -> None:
        rows = self._window(query)
        start = int(query.get("cursor", "0"))
        page = start // PAGE
        time.sleep(self.server.api.delay)
        if self.server.api.broken_page == page:
            self._send(500, {"message": "database is on fire"})
            return
        chunk = rows[start : start + PAGE]
        more = start + PAGE < len(rows)
        self._send(200, {"items": chunk, "next": str(start + PAGE) if more else None})

    def _pages(self, query: dict[str, str]) -> None:
        rows = self._window(query)
        page = int(query.get("page", "1"))
        chunk = rows[(page - 1) * PAGE : page * PAGE]
        total = (len(rows) + PAGE - 1) // PAGE
        self._send(200, {"data": chunk, "meta": {"total_pages": total}})

    def _offset(self, query: dict[str, str]) -> None:
        rows = self._window(query)
        offset, limit = int(query["offset"]), int(query["limit"])
        self._send(200, {"results": rows[offset : offset + limit], "total": len(rows)})

    def _json_link(self, query: dict[str, str]) -> None:
        rows = self._window(query)
        p = int(query.get("p", "0"))
        chunk = rows[p * PAGE : (p + 1) * PAGE]
        nxt = f"/json_link?p={p + 1}" if (p + 1) * PAGE < len(rows) else None
        self._send(200, {"results": chunk, "links": {"next": nxt}})

    def _header_link(self, query: dict[str, str]) -> None:
        rows = self._window(query)
        p = int(query.get("p", "0"))
        chunk = rows[p * PAGE : (p + 1) * PAGE]
        headers = {}
        if (p + 1) * PAGE < len(rows):
            host = f"http://127.0.0.1:{self.server.server_address[1]}"
            headers["Link"] = (
                f'<{host}/header_link?p=0>; rel="first", <{host}/header_link?p={p + 1}>; rel="next"'
            )
        self._send(200, chunk, headers)

    def _paged(self, query: dict[str, str]) -> None:
        """ApiState.pages, one per page number (page_number paginator, meta.total_pages)."""
        api = self.server.api
        page = int(query.get("page", "1"))
        if api.gate is not None and page == len(api.pages):
            api.gate_was_open = api.gate.wait(10)
        if api.broken_page == page:
            self._send(500, {"message": "database is on fire"})
            return
        chunk = api.pages[page - 1] if 1 <= page <= len(api.pages) else []
        self._send(200, {"data": chunk, "meta": {"total_pages": len(api.pages)}})

    def _single(self, query: dict[str, str]) -> None:
        self._send(200, self._window(query))

    # -- behaviours -------------------------------------------------------------------------
    def _flaky(self, query: dict[str, str]) -> None:
        api = self.server.api
        with api.lock:
            fail = api.fail_times > 0
            api.fail_times -= 1
        if fail and api.fail_status == 429:
            self._send(429, {"message": "slow down"}, {"Retry-After": api.retry_after})
            return
        if fail:
            self._send(api.fail_status, {"message": "upstream hiccup"})
            return
        self._send(200, {"items": self._window(query)})

    def _malformed(self, query: dict[str, str]) -> None:
        self._send(200, b'{"items": [{"id": 1}, ')

    def _widen(self, query: dict[str, str]) -> None:
        page = int(query.get("page", "1"))
        pages = {
            1: [{"id": 1, "amount": 10, "meta": {"src": "a", "n": 1}}],
            2: [{"id": 2, "amount": 2.5, "note": "late field", "meta": {"src": "b"}}],
            3: [{"id": "x-3", "amount": None, "tags": ["a", "b"], "flag": True}],
        }
        self._send(200, {"data": pages.get(page, [])})

    def _auth_bearer(self, query: dict[str, str]) -> None:
        api = self.server.api
        given = self.headers.get("Authorization", "")
        if given != f"Bearer {api.token}":
            self._send(401, {"message": f"token rejected: {given}"})  # echoes it, as some do
            return
        self._send(200, {"items": self._window(query)})

    def _auth_basic(self, query: dict[str, str]) -> None:
        user, password = self.server.api.basic
        want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if self.headers.get("Authorization") != want:
            self._send(403, {"error": {"message": "forbidden"}})
            return
        self._send(200, {"items": self._window(query)})

    def _auth_key(self, query: dict[str, str]) -> None:
        api = self.server.api
        if self.headers.get("X-Api-Key") != api.api_key and query.get("api_key") != api.api_key:
            self._send(401, {"message": "no key"})
            return
        self._send(200, {"items": self._window(query)})

    def _hop(self, query: dict[str, str]) -> None:
        """A redirect to /echo on another origin (localhost) or, with same=1, on this one."""
        host = "127.0.0.1" if query.get("same") else "localhost"
        target = f"http://{host}:{self.server.server_address[1]}/echo"
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _echo(self, query: dict[str, str]) -> None:
        auth = self.headers.get("Authorization")
        self._send(200, [{"authorization": auth, "api_key": query.get("api_key")}])

    def _missing(self, query: dict[str, str]) -> None:
        self._send(404, {"message": "no such collection", "api_key": query.get("api_key")})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: ApiState


def records(n: int, start: int = 1, day: int = 1) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"item {i}", "updated_at": f"2024-01-{day:02d}T00:00:{i % 60:02d}Z"}
        for i in range(start, start + n)
    ]


def serve() -> Iterator[tuple[str, ApiState]]:
    """(base URL, state) of a running server; stopped when the generator is closed."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.api = ApiState(records=records(8))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
