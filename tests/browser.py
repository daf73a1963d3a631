"""Headless Chromium with the network off: the DOM a page ends with, its screenshot, and
every network request the page tried.

The network is off three ways: a fresh network namespace where the kernel allows one
(`unshare -rn`), a proxy on a closed port, and a resolver that finds no host. Chromium's net
log still records a request the page *tried*, so a test can assert that none was made, not
only that the page looks right. Debian: `apt-get install -y chromium`.
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

# Screenshots land here (git-ignored) so that a person can look at them after a run.
OUTPUT = REPO / "build" / "test-output"


@functools.cache
def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def need_chromium() -> str:
    """The browser's path; skips when it is missing, except in CI, where it must be there."""
    path = chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium (apt-get install -y chromium): see .ci/run")
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")
    return path


@functools.cache
def _unshare() -> list[str]:
    try:
        ok = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["unshare", "-rn"] if ok.returncode == 0 else []


@dataclass(frozen=True)
class Page:
    dom: str
    requests: list[str]  # http(s)/ws(s) URLs the page tried to fetch, in order
    screenshot: Path | None


def _page_requests(net_log: Path) -> list[str]:
    """URLs the page (not the browser's own background jobs) asked the network for."""
    log = json.loads(net_log.read_text(encoding="utf-8", errors="replace") or "{}")
    kinds = {v: k for k, v in log.get("constants", {}).get("logEventTypes", {}).items()}
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        url = str(params.get("url", ""))
        if kinds.get(event.get("type")) != "URL_REQUEST_START_JOB":
            continue
        if params.get("initiator") == "not an origin":
            continue  # Chromium's own jobs (component updates, spelling dictionaries)
        if re.match(r"(?i)(https?|wss?)://", url):
            urls.append(url)
    return urls


def render(
    url: str, *, screenshot: str | None = None, size: tuple[int, int] = (1400, 2400)
) -> Page:
    """Load ``url`` offline, let its scripts run, return the final DOM and tried requests.

    ``screenshot`` names a PNG under ``build/test-output/``.
    """
    browser = need_chromium()
    shot = None
    with tempfile.TemporaryDirectory(prefix="artist-id-chromium-") as tmp:
        net_log = Path(tmp) / "net.json"
        args = [
            *_unshare(),
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp}/profile",
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--log-net-log={net_log}",
            "--hide-scrollbars",
            f"--window-size={size[0]},{size[1]}",
            "--virtual-time-budget=20000",  # let asynchronous rendering finish
            "--dump-dom",
        ]
        if screenshot:
            OUTPUT.mkdir(parents=True, exist_ok=True)
            shot = OUTPUT / screenshot
            shot.unlink(missing_ok=True)
            args.append(f"--screenshot={shot}")
        proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=180, cwd=tmp)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise AssertionError(f"chromium failed on {url}:\n{proc.stderr[-3000:]}")
        requests = _page_requests(net_log)
    if shot is not None and not shot.is_file():
        raise AssertionError(f"chromium wrote no screenshot for {url}")
    return Page(dom=proc.stdout, requests=requests, screenshot=shot)


def svg_marks(dom: str, div_id: str) -> list[tuple[str, str]]:
    """``(kind, label)`` of every data mark vega drew as SVG inside ``<div id="div_id">``
    (kind is e.g. ``rect mark``, ``line mark``; label its tooltip-like aria-label, such as
    ``actual: A; predicted: B; xy_count: 3``). Empty when the plot stayed blank."""
    start = dom.find(f'id="{div_id}"')
    if start < 0:
        raise AssertionError(f"no element with id {div_id!r} in the page")
    end = dom.find('<div id="', start + 1)
    block = dom[start : end if end >= 0 else len(dom)]
    marks = []
    for tag in re.findall(r"<path\b[^>]*>", block):
        if 'role="graphics-symbol"' not in tag:
            continue
        kind = re.search(r'aria-roledescription="([^"]*)"', tag)
        label = re.search(r'aria-label="([^"]*)"', tag)
        marks.append((kind[1] if kind else "", html.unescape(label[1]) if label else ""))
    return marks
