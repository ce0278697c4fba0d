"""Headless Chromium (Debian's `chromium`) for tests: load a file, get the DOM after parsing, the
console messages, the network requests it tried (from its net log) and a screenshot, decoded."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    """The browser's path; skips the test without one (CI installs it: it fails there)."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("OSIRIS_REQUIRE_DBS") == "1":
        pytest.fail("chromium is not installed (.ci/run installs it)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@dataclass(frozen=True)
class Page:
    dom: str
    console: list[str]  # the page's console messages (errors, CSP violations)
    requests: list[str]  # every URL the browser asked the network for
    screenshot: Png | None


def load(
    path: Path, work: Path, *, size: tuple[int, int] = (1200, 1400), shot: bool = True
) -> Page:
    """Open path (a file:// URL) headless: the DOM and, separately, a screenshot."""
    browser = chromium()
    work.mkdir(parents=True, exist_ok=True)
    base = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={work / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    url = path.absolute().as_uri()
    net = work / "netlog.json"
    dumped = subprocess.run(
        [*base, f"--log-net-log={net}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    console = [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line]
    requests = _requested_urls(net)
    png = None
    if shot:
        target = work / "shot.png"
        taken = subprocess.run(
            [*base, f"--screenshot={target}", f"--window-size={size[0]},{size[1]}", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert taken.returncode == 0 and target.is_file(), taken.stderr[-2000:]
        png = Png.read(target)
    return Page(dumped.stdout, console, requests, png)


def _requested_urls(netlog: Path) -> list[str]:
    try:
        data = json.loads(netlog.read_text(encoding="utf-8"))
    except ValueError:  # a log cut short at exit: take what is complete
        text = netlog.read_text(encoding="utf-8").rstrip().rstrip(",")
        data = json.loads(text + "]}")
    start_job = data["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = set()
    for event in data.get("events", []):
        params = event.get("params") or {}
        url = params.get("url")
        # the browser's own background requests have no origin; the page's have its origin
        if (
            event.get("type") == start_job
            and params.get("initiator") != "not an origin"
            and isinstance(url, str)
            and not url.startswith(("file:", "data:", "about:", "chrome"))
        ):
            urls.add(url)
    return sorted(urls)


@dataclass(frozen=True)
class Png:
    """An 8-bit RGB(A), non-interlaced PNG (what Chromium writes), decoded with zlib alone."""

    width: int
    height: int
    channels: int
    rows: list[bytes]

    @staticmethod
    def read(path: Path) -> Png:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        pos, idat, header = 8, b"", b""
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            kind = data[pos + 4 : pos + 8]
            body = data[pos + 8 : pos + 8 + length]
            if kind == b"IHDR":
                header = body
            elif kind == b"IDAT":
                idat += body
            pos += 12 + length
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
        assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
        channels = 3 if colour == 2 else 4
        raw = zlib.decompress(idat)
        stride = width * channels
        rows: list[bytes] = []
        prev = bytearray(stride)
        at = 0
        for _ in range(height):
            kind, line = raw[at], bytearray(raw[at + 1 : at + 1 + stride])
            at += 1 + stride
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                up = prev[i]
                corner = prev[i - channels] if i >= channels else 0
                if kind == 1:
                    line[i] = (line[i] + left) & 0xFF
                elif kind == 2:
                    line[i] = (line[i] + up) & 0xFF
                elif kind == 3:
                    line[i] = (line[i] + (left + up) // 2) & 0xFF
                elif kind == 4:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                    line[i] = (line[i] + pred) & 0xFF
            rows.append(bytes(line))
            prev = line
        return Png(width, height, channels, rows)

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        row = self.rows[y]
        i = x * self.channels
        return row[i], row[i + 1], row[i + 2]

    def colours(self) -> set[tuple[int, int, int]]:
        return {self.pixel(x, y) for y in range(0, self.height, 7) for x in range(0, self.width, 7)}


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def close(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


STATUS_TOLERANCE = 12
