"""A local stand-in of the Anthropic Messages API (POST /v1/messages, /v1/messages/count_tokens).

Faithful to the wire format the real SDK speaks: it requires `x-api-key` (or a bearer token) and
`anthropic-version`, validates the request's shape (model, max_tokens, alternating messages,
forced tool known, every tool_result answering the previous tool_use), answers with `message`
objects whose content holds `tool_use` blocks and whose `usage` has the cache fields (a
`cache_control` system block is written on first use and read afterwards), and errors with
`{"type": "error", "error": {"type", "message"}}` and a `request-id`. It replays a script of
answers and records every request, so tests can assert what each one carried.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# the API versions the real service accepts (the SDK sends its ANTHROPIC_API_VERSION)
VERSIONS = ("2023-06-01", "2026-10-21")
_ids = itertools.count(1)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes

    def user_texts(self) -> str:
        """Every text the request sent, as one string (system, messages, tool results)."""
        return self.raw.decode("utf-8")

    def last_user_text(self) -> str:
        content = self.body["messages"][-1]["content"]
        if isinstance(content, str):
            return content
        out = []
        for block in content:
            if block.get("type") == "text":
                out.append(block["text"])
            elif block.get("type") == "tool_result":
                inner = block.get("content")
                out.append(inner if isinstance(inner, str) else json.dumps(inner))
        return "\n".join(out)


def tool_answer(pipeline: dict[str, Any], **usage: int) -> dict[str, Any]:
    return {"input": pipeline, **usage}


def error_answer(status: int, kind: str, message: str) -> dict[str, Any]:
    return {"error": (status, kind, message)}


def text_answer(text: str, stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"text": text, "stop_reason": stop_reason}


def _tokens(value: Any) -> int:
    return max(1, math.ceil(len(json.dumps(value, ensure_ascii=False)) / 4))


@dataclass
class StandIn:
    script: list[dict[str, Any]] = field(default_factory=list)
    keys: tuple[str, ...] = ("sk-ant-test-key",)
    requests: list[Recorded] = field(default_factory=list)
    cached_prefixes: set[str] = field(default_factory=set)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def messages_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/v1/messages"]

    def start(self) -> StandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                try:
                    status, payload = standin.handle(self.path, dict(self.headers.items()), raw)
                except Exception as err:  # a bug in a test's script: a 500 the SDK reports
                    status, payload = _error(500, "api_error", f"stand-in failed: {err!r}")
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", f"req_{next(_ids):06d}")
                if status >= 400:
                    self.send_header("x-should-retry", "false")
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- the API ----------------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        headers = {k.lower(): v for k, v in headers.items()}
        path = path.split("?")[0]
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "invalid_request_error", "body is not JSON")
        self.requests.append(Recorded(path, headers, body, raw))
        if headers.get("anthropic-version") not in VERSIONS:
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if key not in self.keys:
            return _error(401, "authentication_error", "invalid x-api-key")
        problem = _validate(body, count=path.endswith("/count_tokens"))
        if problem:
            return _error(400, "invalid_request_error", problem)
        if path == "/v1/messages/count_tokens":
            return 200, {
                "input_tokens": _tokens([body.get("system"), body.get("tools"), body["messages"]])
            }
        if path != "/v1/messages":
            return _error(404, "not_found_error", f"no route {path}")
        if not self.script:
            return _error(500, "api_error", "the stand-in's script is exhausted")
        answer = self.script.pop(0)
        if "error" in answer:
            return _error(*answer["error"])
        if "input" in answer and not body.get("tools"):
            return _error(400, "invalid_request_error", "a tool answer, but no tools were sent")
        return 200, self._message(body, answer)

    def _message(self, body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        system = body.get("system")
        cached = [b for b in system or [] if isinstance(b, dict) and b.get("cache_control")]
        prefix = json.dumps(cached, sort_keys=True)
        creation = read = 0
        if cached:
            size = _tokens(cached)
            if prefix in self.cached_prefixes:
                read = size
            else:
                creation = size
                self.cached_prefixes.add(prefix)
        uncached = _tokens([body["messages"], body.get("tools")])
        if "input" in answer:
            tool = (
                body["tool_choice"]["name"] if body.get("tool_choice") else body["tools"][0]["name"]
            )
            content = [
                {
                    "type": "tool_use",
                    "id": f"toolu_{next(_ids):08d}",
                    "name": tool,
                    "input": answer["input"],
                }
            ]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": answer["text"]}]
            stop = answer.get("stop_reason", "end_turn")
        return {
            "id": f"msg_{next(_ids):08d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": answer.get("input_tokens", uncached),
                "output_tokens": answer.get("output_tokens", _tokens(content)),
                "cache_creation_input_tokens": creation,
                "cache_read_input_tokens": read,
            },
        }


def _error(status: int, kind: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def _validate(body: dict[str, Any], count: bool = False) -> str | None:
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not count and not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages: first message must use the user role"
    previous_tool_ids: set[str] = set()
    for i, message in enumerate(messages):
        if i and message.get("role") == messages[i - 1].get("role"):
            return f"messages.{i}: roles must alternate between user and assistant"
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        if message["role"] == "user":
            for block in blocks:
                if (
                    block.get("type") == "tool_result"
                    and block.get("tool_use_id") not in previous_tool_ids
                ):
                    return f"messages.{i}: tool_result block(s) without a matching tool_use"
        previous_tool_ids = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    tools = body.get("tools") or []
    for tool in tools:
        schema = tool.get("input_schema")
        if (
            not isinstance(tool.get("name"), str)
            or not isinstance(schema, dict)
            or schema.get("type") != "object"
        ):
            return "tools: each tool needs a name and an object input_schema"
    choice = body.get("tool_choice")
    if (
        choice
        and choice.get("type") == "tool"
        and choice.get("name") not in {t["name"] for t in tools}
    ):
        return "tool_choice: the named tool is not in tools"
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        return "system: must be a string or a list of text blocks"
    return None
