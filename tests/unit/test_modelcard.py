"""The run report / model card from hand-made pipeline summaries."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from artist_id import modelcard as mc


def _png(path: Path, size: tuple[int, int] = (1200, 600), colour: str = "teal") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _inputs(tmp_path: Path, **changes: object) -> mc.Inputs:
    test = {
        "n": 38,
        "macro_f1": 0.9548,
        "macro_f1_ci": [0.883, 1.0],
        "balanced_accuracy": 0.95,
        "balanced_accuracy_ci": [0.89, 1.0],
        "accuracy": 0.947,
        "accuracy_ci": [0.87, 1.0],
        "majority_baseline": {"macro_f1": 0.206},
        "per_class": {
            "Ada Brush": {"precision": 1.0, "recall": 0.9, "f1": 0.947, "support": 20},
            "Bea Stroke": {"precision": 0.9, "recall": 1.0, "f1": 0.947, "support": 18},
        },
    }
    val = {"macro_f1": 1.0, "macro_f1_ci": [1.0, 1.0], "balanced_accuracy": 1.0}
    board = {
        "metric": "val/macro_f1",
        "models": [
            {"model": "style_stats", "rank": 1, "val": val, "test": test},
            {
                "model": "vgg16",
                "rank": 2,
                "val": {"macro_f1": 0.9, "macro_f1_ci": [0.8, 1.0]},
                "test": {"macro_f1": 0.89},
            },
        ],
    }
    figures = {
        "confusion.png": _png(tmp_path / "fig" / "confusion.png"),
        "misclassified.png": _png(tmp_path / "fig" / "misclassified.png"),
        "learning_curves.png": _png(tmp_path / "fig" / "learning_curves.png"),
    }
    base = {
        "params": {
            "data": {"source": "data/sample"},
            "base": {"image_size": 64},
            "augment": {"copies": 2, "flip": "horizontal"},
        },
        "ingest": {"source": "data/sample", "files": 10, "ok": 9, "quarantined": 1},
        "validate": {"success": True, "evaluated": 28, "warnings": 0, "failures": []},
        "select": {
            "min_paintings": 30,
            "artists_kept": {"Ada Brush": 40, "Bea Stroke": 35},
            "artists_dropped": {"Cy Palette": 5},
            "splits": {"test": {"Ada Brush": 8, "Bea Stroke": 7}},
            "duplicate_groups": 1,
            "images_in_duplicate_groups": 2,
            "straddling_groups": 0,
        },
        "leaderboard": board,
        "best": {"model": "style_stats", "chosen_by": "val/macro_f1"},
        "best_metrics": {"val": val, "test": test},
        "package": {
            "unknown_threshold": 0.971,
            "unknown_target_precision": 0.9,
            "threshold_reached": True,
            "val_precision_at_threshold": 1.0,
            "val_coverage_at_threshold": 0.8,
        },
        "quarantine": pd.DataFrame(
            [{"source_path": "images/Ada/x|y.jpg", "reason": "truncated", "detail": "cut"}]
        ),
        "split": pd.DataFrame(
            {
                "image_id": ["Ada_1", "Ada_2", "Ada_3"],
                "split": ["train", "train", "val"],
                "group": ["g1", "g1", "g2"],
            }
        ),
        "figures": figures,
        "preview": _png(tmp_path / "reports" / "augment" / "preview.png"),
    }
    base.update(changes)
    return mc.Inputs(**base)  # type: ignore[arg-type]


def _card(tmp_path: Path, inputs: mc.Inputs) -> tuple[str, Path]:
    images = tmp_path / "reports" / "report"
    text = mc.build(inputs, tmp_path / "reports", images)
    return text, images


def test_the_card_has_every_section_and_its_images_exist(tmp_path: Path) -> None:
    text, images = _card(tmp_path, _inputs(tmp_path))
    for heading in (
        "# Run report",
        "## Data",
        "## Leaderboard",
        "## The chosen model: `style_stats`",
        "## Augmentation",
        '## The "unknown" answer',
        "## Known limits",
    ):
        assert heading in text
    assert "macro-F1 0.955 [0.88, 1.00]" in text
    assert "embedded synthetic sample" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == [  # the chosen model's figures are copied, the preview is linked in place
        "report/confusion.png",
        "report/mistakes.jpg",
        "report/learning_curves.png",
        "augment/preview.png",
    ]
    for link in links[:3]:
        with Image.open(images.parent / link) as img:
            assert img.width == 900  # shrunk from 1200 px
    assert (images.parent / links[3]).is_file()
    assert "| `g1` | `Ada_1`, `Ada_2` | train |" in text  # near-duplicate group, not g2
    assert "| `images/Ada/x\\|y.jpg` | truncated | cut |" in text  # a pipe kept in its cell
    assert "overlap (`style_stats` [1.00, 1.00] and `vgg16` [0.80, 1.00])" in text
    assert "below **0.971**" in text and "on 80 % of the validation images" in text
    assert "It knows 2 artists (Ada Brush, Bea Stroke)" in text
    assert "left out: Cy Palette" in text


def test_optional_sections_appear_only_with_their_images(tmp_path: Path) -> None:
    text, _ = _card(tmp_path, _inputs(tmp_path))
    assert "## Style transfer" not in text and "## What the filters see" not in text

    reports = tmp_path / "reports"
    _png(reports / "filters" / "layer_1.png")
    _png(reports / "filters" / "overview.png")
    _png(reports / "filters" / "results" / "deep.png")  # sub-folders are the stage's own
    _png(reports / "style" / "Ada_Brush.png")
    galleries = [
        mc.GalleryContent(
            g,
            mc.gallery_images(tmp_path / g.folder),
            {"style": {"attributed_gatys": 0.666667, "style_loss": 3779.7}}
            if g.folder.name == "style"
            else None,
        )
        for g in mc.GALLERIES
    ]
    figures = dict(_inputs(tmp_path).figures)
    figures["explain_mistakes.png"] = _png(tmp_path / "fig" / "explain_mistakes.png")
    figures["extra_plot.png"] = _png(tmp_path / "fig" / "extra_plot.png")
    text, images = _card(tmp_path, _inputs(tmp_path, galleries=galleries, figures=figures))
    assert "## What the filters see" in text and "## Style transfer" in text
    assert "## Genre" not in text  # no images: no section
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert [x for x in links if x.startswith("filters/")] == [
        "filters/overview.png",  # the overview first, then the layers; results/ left out
        "filters/layer_1.png",
    ]
    assert "style/Ada_Brush.png" in links
    assert "| `attributed_gatys` | 0.6667 |" in text and "| `style_loss` | 3780 |" in text
    assert "Grad-CAM" in text and "report/explain_mistakes.jpg" in links
    assert "### More figures" in text and "report/figure-extra_plot.jpg" in links
    for link in links:
        assert (images.parent / link).is_file(), link


def test_a_failed_validation_and_no_package_are_said(tmp_path: Path) -> None:
    failed = {"success": False, "critical": 1, "failures": ["manifest: sha256 missing"]}
    text, _ = _card(tmp_path, _inputs(tmp_path, validate=failed, package=None))
    assert "**failed** (1 critical)" in text and "- manifest: sha256 missing" in text
    assert "was not packaged in this run" in text


@pytest.mark.parametrize("source", ["data/kaggle/archive.zip", "/data/real"])
def test_real_data_has_no_synthetic_warning(tmp_path: Path, source: str) -> None:
    params = {"data": {"source": source}, "base": {"image_size": 224}, "augment": {}}
    text, _ = _card(tmp_path, _inputs(tmp_path, params=params))
    assert "synthetic" not in text and "224×224" in text
