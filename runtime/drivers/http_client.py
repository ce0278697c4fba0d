"""HTTP for the API extractors: an http connection's auth and headers, retries with backoff and Retry-After, rate limit, classified errors."""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from osiris.runtime.contract.connections import is_secret_field
from osiris.runtime.drivers.base import ConnectionFailure, DriverError, StepContext

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF = 60.0  # seconds: the longest wait between two attempts (Retry-After included)
_ERROR_KEYS = ("message", "error_description", "error", "detail", "title", "errors")


@dataclass(frozen=True, slots=True)
class Response:
    url: str
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    def json(self, what: str = "") -> Any:
        """The body as JSON; a DriverError saying where it is not."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as err:
            raise DriverError(
                f"{what}GET {public_url(self.url)} returned a body that is not JSON "
                f"({type(err).__name__}: {err}; starts {self.body[:60]!r})"
            ) from None


def public_url(url: str, hidden: frozenset[str] = frozenset()) -> str:
    """url without user info, and with the values of query parameters in hidden masked."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = urllib.parse.urlencode(
        [
            (k, "***" if k in hidden else v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """How one step talks to its API: from its http connection, or inline."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)  # api_key in the query string
    # headers that carry credentials: sent only to base_url's origin, never after a redirect
    # or a next-page link to another host
    secret_headers: frozenset[str] = frozenset()
    timeout: float = 30.0
    verify_tls: bool = True
    max_retries: int = 5
    backoff: float = 0.5  # first wait; doubles with each retry
    rate_limit: float | None = None  # requests per second

    @classmethod
    def from_connection(cls, fields: Mapping[str, Any]) -> HttpSettings:
        base = str(fields.get("base_url") or "")
        headers = {str(k): str(v) for k, v in (fields.get("headers") or {}).items()}
        query: dict[str, str] = {}
        auth = fields.get("auth") or {}
        kind = auth.get("type") if isinstance(auth, Mapping) else None
        if kind == "bearer":
            headers["Authorization"] = f"Bearer {auth.get('token') or ''}"
        elif kind == "basic":
            pair = f"{auth.get('username') or ''}:{auth.get('password') or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        elif kind == "api_key":
            name, value = str(auth.get("name") or ""), str(auth.get("value") or "")
            if auth.get("location") == "query":
                query[name] = value
            else:
                headers[name] = value
        timeout = fields.get("timeout", 30)
        verify = fields.get("verify_tls", True)
        secret = {n for n in headers if n == "Authorization" or is_secret_field(n.lower())}
        if kind == "api_key" and auth.get("location") != "query":
            secret.add(str(auth.get("name") or ""))
        return cls(
            base_url=base,
            headers=headers,
            query=query,
            secret_headers=frozenset(secret),
            timeout=float(timeout) if isinstance(timeout, (int, float)) else 30.0,
            verify_tls=verify is not False,
        )

    def same_origin(self, url: str) -> bool:
        """Whether url is on base_url's scheme, host and port (credentials go only there)."""
        mine, theirs = urllib.parse.urlsplit(self.base_url), urllib.parse.urlsplit(url)
        return (mine.scheme, mine.netloc.lower()) == (theirs.scheme, theirs.netloc.lower())

    def url(self, path: str) -> str:
        """path under base_url; an absolute http(s) URL is taken as it is (next-page links)."""
        if path.startswith(("http://", "https://")):
            return path
        if not path:
            return self.base_url
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")


class HttpClient:
    """Requests for one step: retries, backoff, Retry-After, rate limit, cancel-aware waits."""

    def __init__(self, ctx: StepContext, settings: HttpSettings, what: str) -> None:
        self.ctx = ctx
        self.settings = settings
        self.what = f"{what}: " if what else ""  # a prefix for messages
        self.requests = 0
        self._last = 0.0
        self._woken = threading.Event()
        tls = None if settings.verify_tls else ssl._create_unverified_context()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=tls), _Redirects(settings)
        )
        self.hidden = frozenset(settings.query)

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake at once when the run is cancelled."""
        if seconds > 0:
            with self.ctx.on_cancel(self._woken.set):
                self._woken.wait(seconds)
        self.ctx.raise_if_cancelled()

    def _pace(self) -> None:
        rate = self.settings.rate_limit
        if rate:
            self._wait(self._last + 1.0 / rate - time.monotonic())
        self._last = time.monotonic()

    def request(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        method: str = "GET",
        body: Any = None,
    ) -> Response:
        """One logical request: retried on 429, 5xx and connection errors; raises a
        ConnectionFailure (exit 5) for 401/403 and unreachable servers, else DriverError."""
        trusted = self.settings.same_origin(url)
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        if trusted:
            query.update(self.settings.query)
        if query:
            joiner = "&" if urllib.parse.urlsplit(url).query else "?"
            url = url + joiner + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json", "User-Agent": "osiris"}
        headers.update(
            (name, value)
            for name, value in self.settings.headers.items()
            if trusted or name not in self.settings.secret_headers
        )
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            self.ctx.raise_if_cancelled()
            self._pace()
            self.requests += 1
            try:
                response = self._send(method, url, headers, data)
            except ConnectionFailure as err:
                if attempt >= self.settings.max_retries:
                    raise
                self.ctx.log(f"{method} {public_url(url, self.hidden)}: {err}; retrying")
                self._wait(self._backoff(attempt, None))
                attempt += 1
                continue
            if response.status < 400:
                return response
            if response.status in RETRY_STATUSES and attempt < self.settings.max_retries:
                wait = self._backoff(attempt, response.headers.get("retry-after"))
                self.ctx.log(
                    f"{method} {public_url(url, self.hidden)} returned {response.status}; "
                    f"retry {attempt + 1} of {self.settings.max_retries} in {wait:.2f}s"
                )
                self._wait(wait)
                attempt += 1
                continue
            raise self._failure(method, response)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        wait = self.settings.backoff * (2**attempt)
        told = _retry_after(retry_after)
        if told is not None:
            wait = told
        return min(max(wait, 0.0), MAX_BACKOFF)

    def _send(self, method: str, url: str, headers: dict[str, str], data: bytes | None) -> Response:
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.settings.timeout) as answer:
                return Response(
                    answer.geturl(), answer.status, _lower(answer.headers), answer.read()
                )
        except urllib.error.HTTPError as err:
            with err:
                return Response(url, err.code, _lower(err.headers), err.read())
        except urllib.error.URLError as err:
            reason = err.reason
            kind = "refused" if isinstance(reason, ConnectionRefusedError) else "unreachable"
            raise ConnectionFailure(
                f"{self.what}cannot reach {public_url(url, self.hidden)} ({reason})", kind
            ) from None
        except TimeoutError:
            raise ConnectionFailure(
                f"{self.what}{public_url(url, self.hidden)} did not answer within "
                f"{self.settings.timeout:g}s (timeout)",
                "unreachable",
            ) from None
        except (http.client.HTTPException, ConnectionError, OSError) as err:
            raise ConnectionFailure(
                f"{self.what}the connection to {public_url(url, self.hidden)} failed "
                f"({type(err).__name__}: {err})",
                "other",
            ) from None

    def _failure(self, method: str, response: Response) -> DriverError:
        status = response.status
        try:
            reason = http.client.responses.get(status, "")
        except Exception:
            reason = ""
        message = (
            f"{self.what}{method} {public_url(response.url, self.hidden)} returned "
            f"{status} {reason}".rstrip()
        )
        said = _body_message(response.body)
        if said:
            message += f": {said}"
        if status in (401, 403):
            return ConnectionFailure(
                message + " (check the connection's auth and its secrets)", "authentication"
            )
        return DriverError(message)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never carry credentials to another origin."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and self.settings.same_origin(newurl) and self.settings.query:
            parts = urllib.parse.urlsplit(new.full_url)
            pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            pairs += [(k, v) for k, v in self.settings.query.items() if k not in dict(pairs)]
            new.full_url = urllib.parse.urlunsplit(
                parts._replace(query=urllib.parse.urlencode(pairs))
            )
        elif new is not None and not self.settings.same_origin(newurl):
            for name in self.settings.secret_headers:
                new.remove_header(name.capitalize())
                new.remove_header(name)
            parts = urllib.parse.urlsplit(new.full_url)
            kept = [
                (k, v)
                for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
                if k not in self.settings.query
            ]
            new.full_url = urllib.parse.urlunsplit(
                parts._replace(query=urllib.parse.urlencode(kept))
            )
        return new


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lower(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items() if headers is not None else ():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _body_message(body: bytes) -> str:
    """The error message an API put in its body (JSON message/error/detail), else its start."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, Mapping):
        for key in _ERROR_KEYS:
            value = doc.get(key)
            if isinstance(value, str) and value:
                return _one_line(value)
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                return _one_line(value["message"])
            if isinstance(value, list) and value:
                first = value[0]
                if isinstance(first, Mapping) and isinstance(first.get("message"), str):
                    return _one_line(first["message"])
    return _one_line(text)


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def link_next(header: str | None) -> str | None:
    """The rel="next" target of an RFC 8288 Link header."""
    if not header:
        return None
    for part in _split_links(header):
        target, _, rest = part.partition(";")
        target = target.strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        for param in rest.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return target[1:-1]
    return None


def _split_links(header: str) -> list[str]:
    """Split a Link header on the commas between links (not those inside <...> or quotes)."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            depth += 1
        elif char == ">" and not quoted:
            depth -= 1
        if char == "," and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
