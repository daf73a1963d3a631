"""Pages a user opens must work offline, in headless Chromium: DVC's plots page (our template)
and Great Expectations' Data Docs (pointed at vendored copies of what they load from CDNs).

The pipeline's own plots are checked in test_models_pipeline.py; here a two-file project
checks the template itself, fast, and that the browser harness really sees the network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tools import data_docs_assets, plots_template

from artist_id.expectations import validate_dataset
from tests import browser
from tests.conftest import REPO
from tests.data.test_expectations import PARAMS, make_artists, make_manifest
from tests.e2e.project import git

pytestmark = [pytest.mark.e2e]


def test_committed_template_is_the_pinned_libraries_inline() -> None:
    assert plots_template.check() == []
    text = plots_template.TEMPLATE.read_text(encoding="utf-8")
    for pkg in plots_template.PACKAGES:
        assert f"/*! {pkg.name} {pkg.version} | BSD-3-Clause | {pkg.bundle} | sha256 " in text
    licences = plots_template.LICENSES.read_text(encoding="utf-8")
    for name in ("vega-lite 5.23.0", "vega-embed 6.29.0", "vega 5.33.1", "d3-scale"):
        assert f"\n{name}" in licences


def test_check_catches_an_edited_bundle_and_a_cdn_script(tmp_path: Path) -> None:
    text = plots_template.TEMPLATE.read_text(encoding="utf-8")
    edited = tmp_path / "edited.html"
    edited.write_text(text.replace("vegaEmbed", "vegaEmbeD", 1), encoding="utf-8")
    assert any("vega-embed" in p and "sha256" in p for p in plots_template.check(edited))
    cdn = tmp_path / "cdn.html"
    cdn.write_text(
        text.replace("</head>", '<script src="https://cdn.example.invalid/x.js"></script></head>'),
        encoding="utf-8",
    )
    assert any("network" in p for p in plots_template.check(cdn))


def test_dvc_config_points_plots_at_the_offline_template() -> None:
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        configured = repo.config["plots"]["html_template"]
        assert (Path(repo.dvc_dir) / configured).resolve() == plots_template.TEMPLATE


def test_harness_sees_a_page_reach_for_the_network(tmp_path: Path) -> None:
    page = tmp_path / "cdn.html"
    page.write_text(
        '<html><head><script src="https://cdn.example.invalid/lib.js"></script></head>'
        "<body><p id=x>text</p></body></html>"
    )
    rendered = browser.render(page.as_uri())
    assert rendered.requests == ["https://cdn.example.invalid/lib.js"]
    assert '<p id="x">text</p>' in rendered.dom


def test_plots_show_draws_a_confusion_matrix_and_a_curve_offline(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config").write_text((REPO / ".dvc" / "config").read_text())
    (root / ".dvc" / "plots").symlink_to(REPO / ".dvc" / "plots")
    pairs = [("A", "A")] * 3 + [("A", "B")] + [("B", "B")] * 2
    (root / "confusion.json").write_text(
        json.dumps([{"actual": a, "predicted": p} for a, p in pairs])
    )
    (root / "loss.tsv").write_text("step\tloss\n0\t1.5\n1\t0.9\n2\t0.4\n")
    (root / "dvc.yaml").write_text(
        "plots:\n"
        "  - confusion.json:\n      template: confusion\n      x: actual\n      y: predicted\n"
        "  - loss.tsv:\n      x: step\n"
    )
    git(root, "init", "-q")
    dvc_bin = Path(sys.executable).parent / "dvc"
    subprocess.run(
        [str(dvc_bin), "plots", "show", "-o", "out"], cwd=root, check=True, capture_output=True
    )
    page = browser.render((root / "out" / "index.html").as_uri(), screenshot="plots-tiny.png")
    assert page.requests == []
    cells = sorted(set(browser.svg_marks(page.dom, "confusion_json")))
    assert cells == [
        ("rect mark", "actual: A; predicted: A; xy_count: 3"),
        ("rect mark", "actual: A; predicted: B; xy_count: 1"),
        ("rect mark", "actual: B; predicted: A; xy_count: 0"),
        ("rect mark", "actual: B; predicted: B; xy_count: 2"),
    ]
    kinds = {kind for kind, _ in browser.svg_marks(page.dom, "loss_tsv")}
    assert "line mark" in kinds


def test_vendored_data_docs_assets_match_their_manifest_and_cover_gx(tmp_path: Path) -> None:
    assert data_docs_assets.check() == []
    manifest = json.loads(data_docs_assets.MANIFEST.read_text(encoding="utf-8"))
    assert manifest["urls"]["https://code.jquery.com/jquery-3.7.1.min.js"] == (
        "jquery-3.7.1/jquery.min.js"
    )
    licences = data_docs_assets.LICENSES.read_text(encoding="utf-8")
    for name in ("jquery 3.7.1", "bootstrap 4.3.1", "bootstrap-table 1.19.1", "popper.js 1.12.9"):
        assert f"\n{name}  (" in licences
    copy = tmp_path / "assets"
    shutil.copytree(data_docs_assets.ASSETS, copy)
    js = copy / "jquery-3.7.1" / "jquery.min.js"
    js.write_bytes(js.read_bytes() + b";")
    edited = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    del edited["urls"]["https://code.jquery.com/jquery-3.7.1.min.js"]
    (copy / "manifest.json").write_text(json.dumps(edited), encoding="utf-8")
    assert data_docs_assets.check(copy) == [
        "jquery-3.7.1/jquery.min.js does not match its recorded sha256",
        "GX's templates load https://code.jquery.com/jquery-3.7.1.min.js, which is not vendored",
    ]


def test_data_docs_draw_their_tables_offline(tmp_path: Path) -> None:
    docs = tmp_path / "data_docs"
    artists = make_artists()
    artists.loc[0, "years"] = "sometime"  # one failed expectation, so a page shows a failure
    report = validate_dataset(artists, make_manifest(), PARAMS, docs_dir=docs)
    assert not report.success
    index = browser.render((docs / "index.html").as_uri(), screenshot="data-docs-index.png")
    assert index.requests == []
    # bootstrap-table (jQuery, Bootstrap) drew the index: four validation results, four suites
    assert index.dom.count('class="bootstrap-table') == 2
    assert "Showing 1 to 4 of 4 rows" in index.dom
    (result,) = (docs / "validations" / "artists").rglob("*.html")
    shown = browser.render(result.as_uri(), screenshot="data-docs-artists.png")
    assert shown.requests == []
    assert 'class="bootstrap-table' in shown.dom
    assert "Failed" in shown.dom and "sometime" in shown.dom
