"""A local stand-in for the e2b API and the sandbox daemon (envd), for the e2b SDK's own client.

The control plane (POST /v2/sandboxes, DELETE /sandboxes/{id}) is plain JSON over HTTP; envd's
process and filesystem services are Connect-RPC, served here by the server classes generated into
the SDK (e2b.envd.process.process_connect, .filesystem.filesystem_connect); files go over envd's
HTTP /files route. Commands run for real on this machine, as subprocesses with only the envs the
request carries (plus PATH/HOME). Point the SDK at it with E2B_API_URL and E2B_SANDBOX_URL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from e2b.envd.process import process_pb
from e2b.envd.process.process_connect import Process, ProcessASGIApplication
from protobuf import Oneof

Event = process_pb.ProcessEvent


@dataclass
class Record:
    """What the stand-in saw: for the tests' assertions."""

    created: list[dict[str, Any]] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)  # cmd, args, envs, cwd
    written: list[str] = field(default_factory=list)
    api_keys: list[str] = field(default_factory=list)


class _Process(Process):
    """process.Process: Start runs the command and streams start, data and end events."""

    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in

    async def start(self, request: Any, ctx: Any) -> AsyncIterator[Any]:
        config = request.process
        self.stand_in.record.commands.append(
            {
                "cmd": config.cmd,
                "args": list(config.args),
                "envs": dict(config.envs),
                "cwd": config.cwd,
            }
        )
        env = {"PATH": self.stand_in.path, "HOME": str(self.stand_in.home), "LANG": "C.UTF-8"}
        env.update(config.envs)
        proc = await asyncio.create_subprocess_exec(
            config.cmd,
            *config.args,
            cwd=config.cwd or str(self.stand_in.home),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self.stand_in.processes[proc.pid] = proc
        yield process_pb.StartResponse(
            event=Event(event=Oneof("start", Event.StartEvent(pid=proc.pid)))
        )
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            while chunk := await stream.read(65536):
                await queue.put((name, chunk))
            await queue.put(None)

        assert proc.stdout is not None and proc.stderr is not None
        tasks = [
            asyncio.create_task(pump(proc.stdout, "stdout")),
            asyncio.create_task(pump(proc.stderr, "stderr")),
        ]
        open_streams = 2
        while open_streams:
            item = await queue.get()
            if item is None:
                open_streams -= 1
                continue
            name, chunk = item
            data = Event.DataEvent(output=Oneof(name, chunk))
            yield process_pb.StartResponse(event=Event(event=Oneof("data", data)))
        await asyncio.gather(*tasks)
        code = await proc.wait()
        self.stand_in.processes.pop(proc.pid, None)
        end = Event.EndEvent(exit_code=code, exited=True, status=f"exit status {code}")
        yield process_pb.StartResponse(event=Event(event=Oneof("end", end)))

    async def send_signal(self, request: Any, ctx: Any) -> Any:
        pid = request.process.selector.value
        proc = self.stand_in.processes.get(pid)
        if proc is not None:
            os.killpg(proc.pid, signal.SIGKILL)
        return process_pb.SendSignalResponse()


class StandIn:
    """Serves the API and envd on one 127.0.0.1 port; accepted_key is the only valid API key.
    python: the directory put first on the commands' PATH (the sandbox template's python3)."""

    def __init__(self, accepted_key: str, home: Path, python_bin: Path) -> None:
        self.accepted_key = accepted_key
        self.home = home
        self.path = f"{python_bin}:/usr/local/bin:/usr/bin:/bin"
        self.record = Record()
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.rpc = ProcessASGIApplication(_Process(self))
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="error", lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> StandIn:
        self._thread.start()
        while not self._server.started:
            threading.Event().wait(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in list(self.processes.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def environ(self) -> dict[str, str]:
        """What points the e2b SDK here (HTTP/1.1: the stand-in speaks no cleartext HTTP/2)."""
        return {"E2B_API_URL": self.url, "E2B_SANDBOX_URL": self.url, "E2B_HTTP_VERSION": "1.1"}

    async def app(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path.startswith("/process.Process/"):
            await self.rpc(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        status, payload = self._handle(method, path, headers, query, body)
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        kind = b"application/octet-stream" if isinstance(payload, bytes) else b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", kind),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def _handle(
        self, method: str, path: str, headers: dict[str, str], query: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if method == "POST" and path == "/v2/sandboxes":
            key = headers.get("x-api-key", "")
            self.record.api_keys.append(key)
            if key != self.accepted_key:
                return 401, {"code": 401, "message": "Invalid API key"}
            request = json.loads(body)
            self.record.created.append(request)
            return 201, {
                "sandboxID": "standin-sandbox",
                "templateID": request.get("templateID", "base"),
                "clientID": "standin",
                "envdVersion": "0.5.8",
                "envdAccessToken": "standin-envd-token",
            }
        if method == "DELETE" and path.startswith("/sandboxes/"):
            self.record.killed.append(path.rsplit("/", 1)[1])
            return 204, b""
        if path == "/files":
            target = Path(query["path"])
            if method == "POST":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
                self.record.written.append(str(target))
                return 200, [{"name": target.name, "type": "file", "path": str(target)}]
            if not target.is_file():
                return 404, {"code": 404, "message": f"path '{target}' does not exist"}
            return 200, target.read_bytes()
        if path == "/health":
            return 204, b""
        return 404, {"code": 404, "message": f"no route {method} {path}"}
