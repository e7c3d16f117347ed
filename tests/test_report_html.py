"""Static status page, rendered by headless Chromium: content, sorting by fragment, picture."""

from __future__ import annotations

import struct
import subprocess
import zlib
from collections import Counter
from datetime import UTC, datetime
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

from sslm_ci.report.html import render_html, ticks, write_status_page
from tests.test_report_markdown import NOW, sample_rows

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
BY_EXPIRY = ["other.org:old", "example.com:web-ec", "other.org:mx", "example.com:mail-ec"]


def chromium(tmp: Path, url: str, *extra: str) -> str:
    """Load ``url`` in headless Chromium (its scripts run) and return stdout."""
    cmd = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", *extra, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class Dom(HTMLParser):
    """The parts of the dumped DOM the tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.table_rows: list[str] = []
        self.timeline: list[str] = []
        self.heads: dict[str, dict[str, str]] = {}
        self.body: dict[str, str] = {}
        self.bars: list[str] = []
        self.markers = 0
        self.external: list[str] = []
        self._th: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        elif tag == "tr" and "data-ident" in a:
            self.table_rows.append(a["data-ident"])
        elif tag == "g" and a.get("class") == "svc":
            self.timeline.append(a["data-ident"])
        elif tag == "th":
            self._th = a["data-key"]
            self.heads[self._th] = {"aria-sort": a.get("aria-sort", "")}
        elif tag == "a" and self._th:
            self.heads[self._th]["href"] = a.get("href", "")
        elif tag == "rect":
            self.bars.append(a.get("class", ""))
        elif tag == "polygon" and a.get("class") == "renew":
            self.markers += 1
        for name in ("src", "href", "action"):
            if name in a and not a[name].startswith("#"):
                self.external.append(f"{tag} {name}={a[name]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self._th = None


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG: width, height, rows of raw pixel bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytes(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = prev[x]
            corner = prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[x] = (line[x] + pred) & 0xFF
        rgb = b"".join(bytes(line[i : i + 3]) for i in range(0, stride, channels))
        rows.append(rgb)
        prev = bytes(line)
    return width, height, rows


def colour_histogram(rows: list[bytes]) -> Counter[bytes]:
    return Counter(row[i : i + 3] for row in rows for i in range(0, len(row), 3))


def test_the_page_as_written_lists_services_in_config_order(tmp_path: Path) -> None:
    page = write_status_page(tmp_path / "site", sample_rows(), NOW)
    assert page == tmp_path / "site" / "index.html"
    text = page.read_text()
    dom = Dom(text)
    assert dom.table_rows == [r.ident for r in sample_rows()]
    assert dom.timeline == [*BY_EXPIRY, "other.org:new"]
    assert dom.bars == ["bar expired", "bar due", "bar ok", "bar ok"]
    assert dom.markers == 5
    assert dom.external == []
    assert [p.name for p in page.parent.iterdir()] == ["index.html"]


def test_chromium_sorts_by_the_fragment_and_draws_the_page(tmp_path: Path) -> None:
    url = write_status_page(tmp_path / "site", sample_rows(), NOW).as_uri()

    by_expiry = chromium(tmp_path, url + "#sort=expiry", "--dump-dom")
    for text in ("example.com:mail-ec", "2027-02-16 12:00", "renews-in-45d", "2027-03-03 12:00"):
        assert text in by_expiry
    assert "min_roll_mins in 30m" in by_expiry
    dom = Dom(by_expiry)
    assert dom.body["data-sorted"] == "expiry"
    assert dom.table_rows == [*BY_EXPIRY, "other.org:new"]  # no certificate sorts last
    assert dom.heads["expiry"] == {"aria-sort": "ascending", "href": "#sort=-expiry"}
    assert dom.heads["days"] == {"aria-sort": "none", "href": "#sort=days"}
    assert dom.timeline == [*BY_EXPIRY, "other.org:new"]

    dom = Dom(chromium(tmp_path, url + "#sort=-days", "--dump-dom"))
    assert dom.body["data-sorted"] == "-days"
    assert dom.table_rows == [*reversed(BY_EXPIRY), "other.org:new"]
    assert dom.heads["days"] == {"aria-sort": "descending", "href": "#sort=days"}

    dom = Dom(chromium(tmp_path, url + "#sort=service", "--dump-dom"))
    assert dom.table_rows == sorted(r.ident for r in sample_rows())

    shot = tmp_path / "shot.png"
    chromium(tmp_path, url, f"--screenshot={shot}", "--window-size=1200,900")
    data = shot.read_bytes()
    assert len(data) > 20_000
    width, height, rows = png_pixels(data)
    assert (width, height) == (1200, 900)
    colours = colour_histogram(rows)
    assert colours[b"\xff\xff\xff"] < 0.97 * width * height  # not a blank page
    # The bars (and badges) in their state colours: ok, due, expired.
    for rgb in (b"\x2e\x7d\x32", b"\xc7\x7c\x00", b"\xc6\x28\x28"):
        assert colours[rgb] > 300, rgb


def test_the_page_loads_nothing_and_escapes_names() -> None:
    rows = sample_rows()
    text = render_html(rows, NOW, title="<prod>")
    assert "&lt;prod&gt; certificate status" in text
    assert "<prod>" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert "<link" not in text and "src=" not in text and "@import" not in text


def test_ticks_follow_the_calendar() -> None:
    start = datetime(2026, 11, 20, 7, tzinfo=UTC)
    daily = ticks(start, datetime(2026, 11, 26, tzinfo=UTC))
    assert [t.day for t in daily] == [21, 22, 23, 24, 25, 26]
    weekly = ticks(start, datetime(2026, 12, 30, tzinfo=UTC))
    assert weekly[0] == datetime(2026, 11, 21, tzinfo=UTC)
    assert {(b - a).days for a, b in pairwise(weekly)} == {7}
    monthly = ticks(start, datetime(2027, 4, 1, tzinfo=UTC))
    assert monthly == [datetime(2026, m, 1, tzinfo=UTC) for m in (12,)] + [
        datetime(2027, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4)
    ]
    yearly = ticks(start, datetime(2030, 1, 1, tzinfo=UTC))
    assert all(t.day == 1 and (t.month - 1) % 6 == 0 for t in yearly)
    assert 4 <= len(yearly) <= 8
