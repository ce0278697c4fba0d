"""rest.extractor -> Parquet against a plain loop of the same HTTP client, in the same run.

Usage: python bench/http_bench.py [--records N ...] [--page-size K] [--repeat R]
(default 100k records in pages of 100, i.e. 1,000 pages, and 300k; 1 run each). A local API
server runs in its own process (cursor pagination, records generated on the fly); every case is
its own process and reports wall seconds, records/s and peak RSS (wait4):

- `plain loop`: urllib (the client rest.extractor uses) page after page, every record kept in a
  list, then one pyarrow Table written to Parquet: what a hand-written script does;
- `oml-run`: a compiled manifest, rest.extractor (cursor paginator) -> filesystem.parquet_writer.
The ratio of peak RSS between sizes shows whether memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "customer": {"id": i % 5000, "email": f"user{i % 5000}@example.com"},
        "status": ("new", "paid", "shipped")[i % 3],
        "amount": round((i % 10000) / 100 + 0.99, 2),
        "updated_at": f"2024-01-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        "note": "note for order " + str(i),
    }


def serve(total: int, page: int, port_file: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            start = int(query.get("cursor", "0"))
            end = min(start + page, total)
            body = {
                "items": [record(i) for i in range(start, end)],
                "next": str(end) if end < total else None,
            }
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


PLAIN = """
import json, sys, urllib.request
import pyarrow as pa, pyarrow.parquet as pq
base, out = sys.argv[1], sys.argv[2]
rows, cursor = [], None
while True:
    url = base + "/orders" + ("?cursor=" + cursor if cursor else "")
    with urllib.request.urlopen(url, timeout=30) as answer:
        body = json.loads(answer.read())
    for r in body["items"]:
        rows.append({**r, "customer": json.dumps(r["customer"], separators=(",", ":"))})
    cursor = body["next"]
    if not cursor:
        break
pq.write_table(pa.Table.from_pylist(rows), out)
print(len(rows))
"""


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:3]} failed: {err[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def write_project(project: Path, base: str) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.runtime_helpers import step, write_connections, write_manifest

    write_connections(
        project, f"version: 1\nconnections:\n  http:\n    api: {{base_url: {base}}}\n"
    )
    config = {
        "path": "/orders",
        "data_selector": "items",
        "paginator": {"type": "cursor", "cursor_path": "next", "cursor_param": "cursor"},
    }
    return write_manifest(
        project / "build",
        [
            step("src", "rest.extractor", "extractor", config, connection="@http.api"),
            step(
                "out", "filesystem.parquet_writer", "writer", {"path": "out.parquet"}, needs=["src"]
            ),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), Path(args.serve[2]))
        return
    results: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for total in args.records:
        with tempfile.TemporaryDirectory(prefix="osiris-http-bench-") as tmp:
            tmpdir = Path(tmp)
            port_file = tmpdir / "port"
            server = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    str(total),
                    str(args.page_size),
                    str(port_file),
                ]
            )
            try:
                while not port_file.exists() or not port_file.read_text():
                    time.sleep(0.05)
                base = f"http://127.0.0.1:{port_file.read_text()}"
                manifest = write_project(tmpdir, base)
                run = [sys.executable, "-m", "osiris.runtime.cli", str(manifest)]
                run += ["--project-dir", str(tmpdir)]
                env = {**os.environ, "OSIRIS_VALIDATION": "off"}
                for _ in range(args.repeat):
                    plain = [sys.executable, "-c", PLAIN, base, str(tmpdir / "plain.parquet")]
                    results.setdefault(("plain loop", total), []).append(measure(plain))
                    results.setdefault(("oml-run", total), []).append(measure(run, env))
                import pyarrow.parquet as pq

                assert pq.read_metadata(tmpdir / "out.parquet").num_rows == total
            finally:
                server.terminate()
                server.wait()
    pages = {t: (t + args.page_size - 1) // args.page_size for t in args.records}
    print(
        f"{'case':<12} {'records':>8} {'pages':>6} {'seconds':>8} {'records/s':>10} {'peak RSS':>9}"
    )
    for (case, total), samples in results.items():
        seconds = sorted(s for s, _ in samples)[len(samples) // 2]
        rss = max(r for _, r in samples)
        print(
            f"{case:<12} {total:>8} {pages[total]:>6} {seconds:>8.2f} {total / seconds:>10.0f} "
            f"{rss / 2**20:>7.0f}Mi"
        )
    lo, hi = min(args.records), max(args.records)
    if lo != hi:
        for case in ("plain loop", "oml-run"):
            ratio = max(r for _, r in results[(case, hi)]) / max(r for _, r in results[(case, lo)])
            print(f"{case}: peak RSS {hi:,} / {lo:,} records = {ratio:.2f}x")


if __name__ == "__main__":
    main()
