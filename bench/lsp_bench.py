"""Benchmark oml-lsp over stdio: start-up to first diagnostics, and didChange → publishDiagnostics."""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def pipeline(steps: int, variant: int = 0) -> str:
    """A valid extract → (process → write)* chain of `steps` steps; variant changes one value."""
    out = [
        'oml_version: "0.1.0"',
        "name: bench",
        "params:",
        '  since: {type: string, default: "2024-01-01"}',
        "steps:",
        "  - id: s0",
        "    component: filesystem.csv_extractor",
        "    mode: read",
        f"    config: {{path: 'data/in-{variant}.csv', delimiter: ','}}",
    ]
    for i in range(1, steps):
        if i % 2:
            out += [
                f"  - id: s{i}",
                "    component: duckdb.processor",
                "    mode: transform",
                f"    needs: [s{i - 1}]",
                "    config:",
                f"      query: \"SELECT * FROM s{i - 1} WHERE day >= '${{params.since}}'\"",
            ]
        else:
            out += [
                f"  - id: s{i}",
                "    component: filesystem.csv_writer",
                "    mode: write",
                f"    needs: [s{i - 1}]",
                "    config:",
                f"      path: out/s{i}.csv",
            ]
    return "\n".join(out) + "\n"


class Client:
    """A minimal JSON-RPC client over the server's stdio (no dependency on the code under test)."""

    def __init__(self, command: list[str]) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        stream = self.proc.stdout
        while True:
            length = 0
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            message = json.loads(stream.read(length))
            message["_at"] = time.perf_counter()
            self.inbox.put(message)

    def send(self, message: dict[str, Any]) -> float:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        at = time.perf_counter()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return at

    def request(self, method: str, params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.send({"id": ident, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == ident and "method" not in m)

    def notify(self, method: str, params: Any) -> float:
        return self.send({"method": method, "params": params})

    def wait(self, match: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.perf_counter() + timeout
        while True:
            message = self.inbox.get(timeout=max(0.01, deadline - time.perf_counter()))
            if match(message):
                return message

    def diagnostics(self, uri: str, version: int) -> dict[str, Any]:
        return self.wait(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics"
                and m["params"]["uri"] == uri
                and m["params"].get("version") == version
            )
        )

    def close(self) -> None:
        self.request("shutdown", None)
        self.notify("exit", None)
        self.proc.wait(timeout=10)


def run(command: list[str], sizes: list[int], repeats: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="oml-lsp-bench-"))
    client = Client(command)
    client.request("initialize", {"processId": None, "rootUri": root.as_uri(), "capabilities": {}})
    initialized = time.perf_counter()
    client.notify("initialized", {})
    uri = (root / "first.oml").as_uri()
    text = pipeline(3)
    opened = client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "oml", "version": 1, "text": text}},
    )
    first = client.diagnostics(uri, 1)["_at"]
    report: dict[str, Any] = {
        "start_to_initialized_ms": round((initialized - client.started) * 1000, 1),
        "start_to_first_diagnostics_ms": round((first - client.started) * 1000, 1),
        "didOpen_to_first_diagnostics_ms": round((first - opened) * 1000, 1),
    }
    for steps in sizes:
        uri = (root / f"p{steps}.oml").as_uri()
        client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "oml",
                    "version": 1,
                    "text": pipeline(steps),
                }
            },
        )
        client.diagnostics(uri, 1)
        times = []
        for version in range(2, repeats + 2):
            sent = client.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"text": pipeline(steps, version)}],
                },
            )
            times.append((client.diagnostics(uri, version)["_at"] - sent) * 1000)
        times.sort()
        report[f"{steps}_steps"] = {
            "lines": pipeline(steps).count("\n"),
            "p50_ms": round(statistics.median(times), 1),
            "p90_ms": round(times[int(len(times) * 0.9) - 1], 1),
            "min_ms": round(times[0], 1),
            "repeats": repeats,
        }
    client.close()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="50,1000", help="step counts (comma separated)")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument(
        "--server", default=f"{sys.executable} -m osiris.compiler.lsp.server", help="server command"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(json.dumps(run(args.server.split(), sizes, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
