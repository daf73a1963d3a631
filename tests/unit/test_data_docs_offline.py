"""offline_data_docs: a GX site's CDN scripts, styles and logo become files inside the site.

A hand-written site stands in for GX's output here (GX's own pages are checked in
tests/data/test_expectations.py, and opened in a browser in tests/e2e/test_offline_pages.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from artist_id.expectations import offline_data_docs

JQUERY = "https://code.jquery.com/jquery-3.7.1.min.js"
BOOTSTRAP_CSS = "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"
VEGA = "https://cdn.jsdelivr.net/npm/vega@5"
LOGO = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png"
DARK_LOGO = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png"
UNKNOWN = "https://cdn.example.invalid/new-widget.min.js"


def page(*, up: str) -> str:
    return (
        f'<html><head><script src="{JQUERY}"></script>'
        f'<link rel="stylesheet" href="{BOOTSTRAP_CSS}"/>'
        f'<script src="{VEGA}"></script><script src="{UNKNOWN}"></script></head>'
        f'<body><a href="https://greatexpectations.io">GX</a>'
        f'<img src="{LOGO}?d=20261207T155702.470837Z"/>'
        f'<img src="{up}static/images/logo-long.png"/></body></html>'
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "data_docs"
    (root / "validations" / "suite" / "run").mkdir(parents=True)
    (root / "static" / "styles").mkdir(parents=True)
    (root / "static" / "images").mkdir(parents=True)
    (root / "static" / "images" / "logo-long.png").write_bytes(b"png")
    (root / "index.html").write_text(page(up=""), encoding="utf-8")
    (root / "validations" / "suite" / "run" / "result.html").write_text(
        page(up="../../../"), encoding="utf-8"
    )
    (root / "static" / "styles" / "default.css").write_text(
        f".logo {{ background: url('{DARK_LOGO}') 0 0 no-repeat; }}\n", encoding="utf-8"
    )
    return root


def test_cdn_urls_become_paths_relative_to_each_page(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="artist_id.expectations"):
        count = offline_data_docs(site)
    # per page: jquery, bootstrap, vega, the logo (4); the stylesheet: its logo (1)
    assert count == 4 + 4 + 1
    index = (site / "index.html").read_text(encoding="utf-8")
    assert '<script src="static/vendor/jquery-3.7.1/jquery.min.js">' in index
    assert 'href="static/vendor/bootstrap-4.3.1/css/bootstrap.min.css"' in index
    assert '<script src="static/vendor/vega-5.33.1/vega.min.js">' in index
    assert index.count('<img src="static/images/logo-long.png"/>') == 2  # query dropped
    deep = (site / "validations" / "suite" / "run" / "result.html").read_text(encoding="utf-8")
    assert '<script src="../../../static/vendor/jquery-3.7.1/jquery.min.js">' in deep
    css = (site / "static" / "styles" / "default.css").read_text(encoding="utf-8")
    assert "url('../../static/images/logo-long.png')" in css
    # a link a reader follows stays; an asset nobody vendored stays, and is reported
    assert '<a href="https://greatexpectations.io">' in index
    assert f'<script src="{UNKNOWN}">' in index
    assert [r.getMessage() for r in caplog.records] == [
        f"Data Docs still load 1 URL(s) from the network (not vendored): {UNKNOWN}"
    ]


def test_every_rewritten_path_is_a_file_of_the_site(site: Path) -> None:
    offline_data_docs(site)
    deep = site / "validations" / "suite" / "run" / "result.html"
    text = deep.read_text(encoding="utf-8")
    for ref in (
        "../../../static/vendor/jquery-3.7.1/jquery.min.js",
        "../../../static/images/logo-long.png",
    ):
        assert ref in text
        assert (deep.parent / ref).resolve().is_file()
    vendor = site / "static" / "vendor"
    manifest = json.loads(
        (
            Path(__file__).resolve().parents[2] / "src/artist_id/data_docs_assets/manifest.json"
        ).read_text(encoding="utf-8")
    )
    assert sorted(str(p.relative_to(vendor)) for p in vendor.rglob("*") if p.is_file()) == sorted(
        [*manifest["files"], "THIRD_PARTY_LICENSES.txt"]
    )


def test_a_second_pass_changes_nothing(site: Path) -> None:
    offline_data_docs(site)
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    assert offline_data_docs(site) == 0
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
