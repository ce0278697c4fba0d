"""rest.extractor -> Parquet against a plain loop of the same HTTP client, in the same run.

Usage: python bench/http_bench.py [--records N ...] [--page-size K] [--repeat R] [--late-page P]
(default 100k records in pages of 100, i.e. 1,000 pages, and 300k; 1 run each). A local API
server runs in its own process (cursor pagination, records generated on the fly); every case is
its own process and reports wall seconds, records/s, time to first row at the writer and peak
RSS (wait4):

- `plain loop`: urllib (the client rest.extractor uses) page after page, every record kept in a
  list, then one pyarrow Table written to Parquet: what a hand-written script does (its first
  row reaches the writer when the last page is in);
- `oml-run`: a compiled manifest, rest.extractor (cursor paginator) -> filesystem.parquet_writer;
  its first row is the writer step's first line in runs/<id>/progress.jsonl;
- `widened`: oml-run against an API whose records gain a field `late` from page P on (default:
  nine tenths of the pages), so the load restarts once and replays what it had sent.
Ratios are against the plain loop of the same size; the ratio of peak RSS between sizes shows
whether memory stays flat.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def record(i: int, late: bool = False) -> dict[str, Any]:
    return {
        **({"late": f"late {i}"} if late else {}),
        "id": i,
        "customer": {"id": i % 5000, "email": f"user{i % 5000}@example.com"},
        "status": ("new", "paid", "shipped")[i % 3],
        "amount": round((i % 10000) / 100 + 0.99, 2),
        "updated_at": f"2024-01-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        "note": "note for order " + str(i),
    }


def serve(total: int, page: int, port_file: Path, late_page: int) -> None:
    """Records from page late_page on (counted from 1) carry the field `late`; 0: none do."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            start = int(query.get("cursor", "0"))
            end = min(start + page, total)
            late = late_page > 0 and start // page + 1 >= late_page and "late" in self.path
            body = {
                "items": [record(i, late) for i in range(start, end)],
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
import json, sys, time, urllib.request
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
print(time.time())  # the first row reaches the writer
pq.write_table(pa.Table.from_pylist(rows), out)
"""


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float
    first_row: float  # seconds from the start to the first row at the writer
    rss: int  # peak bytes


def measure(
    cmd: list[str], first_row: Callable[[str], float], env: dict[str, str] | None = None
) -> Sample:
    """Wall seconds, time to first row (first_row(stdout) is its epoch time) and peak RSS."""
    began = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:3]} failed: {err[-2000:]}")
    return Sample(elapsed, first_row(out) - began, usage.ru_maxrss * 1024)


def writer_first_row(project: Path) -> Callable[[str], float]:
    """The epoch time of the writer step's first progress line in the project's one run."""

    def read(_: str) -> float:
        (run,) = (project / "runs").iterdir()
        for line in (run / "progress.jsonl").read_text().splitlines():
            entry = json.loads(line)
            if entry["step"] == "out" and entry["rows"] > 0:
                return dt.datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
        raise SystemExit("the writer reported no rows")

    return read


def write_project(project: Path, base: str, path: str = "/orders") -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.runtime_helpers import step, write_connections, write_manifest

    write_connections(
        project, f"version: 1\nconnections:\n  http:\n    api: {{base_url: {base}}}\n"
    )
    config = {
        "path": path,
        "data_selector": "items",
        "paginator": {"type": "cursor", "cursor_path": "next", "cursor_param": "cursor"},
    }
    return write_manifest(
        project / "build" / path.strip("/"),
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
    parser.add_argument("--late-page", type=int, help="first page with the field `late`")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        total, page, port_file, late = args.serve
        serve(int(total), int(page), Path(port_file), int(late))
        return
    import pyarrow.parquet as pq

    results: dict[tuple[str, int], list[Sample]] = {}
    pages = {t: (t + args.page_size - 1) // args.page_size for t in args.records}
    for total in args.records:
        late = args.late_page or max(2, pages[total] * 9 // 10)
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
                    str(late),
                ]
            )
            try:
                while not port_file.exists() or not port_file.read_text():
                    time.sleep(0.05)
                base = f"http://127.0.0.1:{port_file.read_text()}"
                runs = {
                    case: [
                        sys.executable,
                        "-m",
                        "osiris.runtime.cli",
                        str(manifest),
                        "--project-dir",
                        str(tmpdir),
                    ]
                    for case, manifest in (
                        ("oml-run", write_project(tmpdir, base)),
                        ("widened", write_project(tmpdir, base, "/orders/late")),
                    )
                }
                env = {**os.environ, "OSIRIS_VALIDATION": "off"}
                from_stdout = lambda out: float(out.split()[-1])  # noqa: E731
                for _ in range(args.repeat):
                    plain = [sys.executable, "-c", PLAIN, base, str(tmpdir / "plain.parquet")]
                    results.setdefault(("plain loop", total), []).append(
                        measure(plain, from_stdout)
                    )
                    for case, run in runs.items():
                        shutil.rmtree(tmpdir / "runs", ignore_errors=True)  # one run to read
                        sample = measure(run, writer_first_row(tmpdir), env)
                        results.setdefault((case, total), []).append(sample)
                        table = pq.read_table(tmpdir / "out.parquet")
                        assert table.num_rows == total
                        assert ("late" in table.column_names) == (case == "widened")
            finally:
                server.terminate()
                server.wait()
    print(
        f"{'case':<11} {'records':>8} {'pages':>6} {'seconds':>8} {'records/s':>10} "
        f"{'first row':>10} {'peak RSS':>9} {'time':>6} {'1st row':>7} {'RSS':>6}"
    )
    for (case, total), samples in results.items():
        seconds, first, rss = _summary(samples)
        base_s, base_first, base_rss = _summary(results[("plain loop", total)])
        print(
            f"{case:<11} {total:>8} {pages[total]:>6} {seconds:>8.2f} {total / seconds:>10.0f} "
            f"{first:>9.2f}s {rss / 2**20:>7.0f}Mi {seconds / base_s:>5.2f}x "
            f"{first / base_first:>6.3f}x {rss / base_rss:>5.2f}x"
        )
    print("(time, 1st row, RSS: ratio to the plain loop of the same size)")
    lo, hi = min(args.records), max(args.records)
    if lo != hi:
        for case in ("plain loop", "oml-run", "widened"):
            ratio = _summary(results[(case, hi)])[2] / _summary(results[(case, lo)])[2]
            print(f"{case}: peak RSS {hi:,} / {lo:,} records = {ratio:.2f}x")


def _summary(samples: list[Sample]) -> tuple[float, float, int]:
    """Median seconds, median time to first row, highest peak RSS."""
    middle = len(samples) // 2
    seconds = sorted(s.seconds for s in samples)[middle]
    first = sorted(s.first_row for s in samples)[middle]
    return seconds, first, max(s.rss for s in samples)


if __name__ == "__main__":
    main()
