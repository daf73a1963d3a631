"""The run report / model card (``reports/report.md``): what a reviewer reads first.

Built from files the pipeline already wrote (summaries, the leaderboard, the chosen
model's evaluation, the package's "unknown" threshold). Images that stages keep in git
(``cache: false``: the augmentation preview, the style and filter grids) are linked where
they are; the chosen model's figures, which DVC caches, are copied, shrunk, into
``reports/report/`` (committed to git). Every link is relative, so the page renders on GitHub
as it is. Sections whose stage is absent (style transfer, filters, genre, periods, Grad-CAM
heat maps) are left out.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from artist_id import reporting as md
from artist_id.leaderboard import overlap_sentence

METRICS = (("macro_f1", "macro-F1"), ("balanced_accuracy", "balanced acc."), ("accuracy", "acc."))
# Figures of the evaluate stage that have their own place; any other PNG in the chosen
# model's figures/ is shown under "More figures".
KNOWN_FIGURES = frozenset({"confusion.png", "misclassified.png", "learning_curves.png"})
HEAT_MAPS = {
    "explain_mistakes.png": "Where it looked (Grad-CAM) on its most confident mistakes:",
    "explain_correct.png": "... and on its most confident right answers:",
}
MAX_LISTED = 15  # quarantined files / duplicate groups listed before "... and N more"


@dataclass(frozen=True)
class Gallery:
    """An optional section of images (a stage that may not exist in this pipeline)."""

    title: str
    folder: Path
    intro: str


# Sections other stages add; shown when their folder holds images.
GALLERIES: tuple[Gallery, ...] = (
    Gallery(
        "Style transfer",
        Path("reports/style"),
        "Gatys neural style transfer in each chosen artist's style, and whether the "
        "classifier attributes the result to that artist.",
    ),
    Gallery(
        "What the filters see",
        Path("reports/filters"),
        "For chosen filters of layers 1-5, the image patches that activate them most.",
    ),
    Gallery("Genre", Path("reports/genre"), "The multi-label genre model."),
    Gallery("Periods", Path("reports/periods"), "Style statistics by period, and palettes."),
)


@dataclass(frozen=True)
class GalleryContent:
    """What an optional stage left: its images (in git) and its metrics.json, if any."""

    gallery: Gallery
    images: Sequence[Path]
    metrics: Mapping[str, Any] | None = None


@dataclass
class Inputs:
    """Everything the card is made of, as the report stage read it."""

    params: Mapping[str, Any]  # the params sections the card quotes (plain mappings)
    ingest: Mapping[str, Any]
    validate: Mapping[str, Any]
    select: Mapping[str, Any]
    leaderboard: Mapping[str, Any]
    best: Mapping[str, Any]
    best_metrics: Mapping[str, Any]  # reports/evaluate/<best>/details.json (val, test)
    package: Mapping[str, Any] | None = None
    quarantine: pd.DataFrame | None = None
    split: pd.DataFrame | None = None  # data/processed/split.csv
    figures: Mapping[str, Path] = field(default_factory=dict)  # the chosen model's (DVC-cached)
    preview: Path | None = None  # the augmentation preview (in git)
    galleries: Sequence[GalleryContent] = ()


class Card:
    """Collects Markdown lines; copies the DVC-cached images it shows into ``image_dir``
    and links the ones already in git from where they are."""

    def __init__(self, report_dir: Path, image_dir: Path) -> None:
        self.report_dir = report_dir
        self.image_dir = image_dir
        self.lines: list[str] = []
        self.used: set[str] = set()

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def image(self, source: Path, name: str, alt: str, *, photo: bool = False) -> None:
        """Copy ``source`` (shrunk) as ``name`` and link it."""
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
        target = self.image_dir / f"{stem}{'.jpg' if photo else '.png'}"
        if target.name in self.used:
            raise ValueError(f"two report images named {target.name}")
        self.used.add(target.name)
        md.save_image(source, target)
        self.link(target, alt)

    def link(self, path: Path, alt: str) -> None:
        """Link a file that is in git, relative to the report."""
        self.add(md.image(alt, Path(os.path.relpath(path, self.report_dir)).as_posix()), "")

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


def _pct(x: Any) -> str:
    v = md.number(x)
    return "–" if math.isnan(v) else f"{100 * v:.0f} %"


def _summary(card: Card, inp: Inputs) -> None:
    best = str(inp.best.get("model"))
    test = inp.best_metrics.get("test", {})
    metric = str(inp.best.get("chosen_by", "val/macro_f1"))
    card.add(
        "# Run report",
        "",
        f"**Chosen model: `{best}`** (best validation {_metric_name(metric)}). "
        f"On the {test.get('n', '?')} test images: macro-F1 "
        f"{md.with_ci(test.get('macro_f1'), test.get('macro_f1_ci'))}, balanced accuracy "
        f"{md.with_ci(test.get('balanced_accuracy'), test.get('balanced_accuracy_ci'))}, "
        f"accuracy {md.with_ci(test.get('accuracy'), test.get('accuracy_ci'))} "
        f"(95 % bootstrap intervals; always answering the majority artist gives macro-F1 "
        f"{md.fmt(test.get('majority_baseline', {}).get('macro_f1'))}).",
        "",
    )
    if _is_sample(inp):
        card.add(
            "> The data is the **embedded synthetic sample** (fictional artists with procedural "
            "styles): these numbers show that the pipeline works, not how the models do on "
            "real paintings.",
            "",
        )


def _metric_name(metric: str) -> str:
    """``val/macro_f1`` -> ``macro-F1``."""
    key = metric.split("/", 1)[-1]
    return dict(METRICS).get(key, key).replace("acc.", "accuracy")


def _is_sample(inp: Inputs) -> bool:
    source = str(inp.params.get("data", {}).get("source", ""))
    return source.rstrip("/") == "data/sample"


def _data(card: Card, inp: Inputs) -> None:
    ing, sel, val = inp.ingest, inp.select, inp.validate
    kept = dict(sel.get("artists_kept", {}))
    splits = sel.get("splits", {})
    card.add(
        "## Data",
        "",
        f"Source `{ing.get('source', '?')}` ({ing.get('layout', '?')} layout): "
        f"{ing.get('artists_in_csv', '?')} artists in `artists.csv`, "
        f"{ing.get('artists_with_images', '?')} with images; {ing.get('files', '?')} files, "
        f"{ing.get('ok', '?')} usable, {ing.get('quarantined', 0)} quarantined.",
        "",
    )
    if val.get("success"):
        status = f"**passed** ({val.get('evaluated', '?')} expectations"
        status += f", {val.get('warnings', 0)} warning(s))" if val.get("warnings") else ")"
    else:
        status = f"**failed** ({val.get('critical', '?')} critical)"
    card.add(f"Validation (Great Expectations): {status}.", "")
    failures = list(val.get("failures") or [])
    for failure in failures[:MAX_LISTED]:
        card.add(f"- {md.cell(failure if isinstance(failure, str) else _describe(failure))}")
    if failures:
        card.add("")

    min_paintings = sel.get("min_paintings", "?")
    card.add(
        f"Artists with more than {min_paintings} usable paintings are kept: "
        f"{len(kept)} of {len(kept) + len(sel.get('artists_dropped', {}))}.",
        "",
    )
    rows = [
        [
            md.cell(artist),
            str(count),
            *(str(splits.get(s, {}).get(artist, 0)) for s in ("train", "val", "test")),
        ]
        for artist, count in kept.items()
    ]
    card.add(*md.table(["artist", "paintings", "train", "val", "test"], rows, "lrrrr"), "")
    card.add(
        f"Near-duplicates: {sel.get('duplicate_groups', 0)} group(s) of "
        f"{sel.get('images_in_duplicate_groups', 0)} images (exact or perceptual-hash copies) "
        f"are kept inside one split each ({sel.get('straddling_groups', 0)} straddle splits).",
        "",
    )
    _duplicate_groups(card, inp.split)
    _quarantine(card, inp.quarantine)


def _describe(failure: Mapping[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in sorted(failure.items()))


def _duplicate_groups(card: Card, split: pd.DataFrame | None) -> None:
    if split is None or split.empty or "group" not in split.columns:
        return
    sizes = split.groupby("group")["image_id"].transform("size")
    groups = split[sizes > 1].sort_values(["group", "image_id"])
    if groups.empty:
        return
    rows = [
        [
            md.code(g),
            ", ".join(f"`{i}`" for i in frame["image_id"]),
            md.cell(frame["split"].iloc[0]),
        ]
        for g, frame in groups.groupby("group", sort=True)
    ]
    more = len(rows) - MAX_LISTED
    card.add(*md.table(["group", "images", "split"], rows[:MAX_LISTED]))
    card.add(*([f"\n... and {more} more groups (data/processed/split.csv)."] if more > 0 else []))
    card.add("")


def _quarantine(card: Card, quarantine: pd.DataFrame | None) -> None:
    if quarantine is None or quarantine.empty:
        card.add("No file was quarantined.", "")
        return
    card.add(f"Quarantined files ({len(quarantine)}; `reports/ingest/quarantine.csv`):", "")
    rows = [
        [
            md.code(r.get("source_path", "")),
            md.cell(r.get("reason", "")),
            md.cell(r.get("detail", "")),
        ]
        for r in quarantine.head(MAX_LISTED).to_dict("records")
    ]
    card.add(*md.table(["file", "reason", "detail"], rows))
    more = len(quarantine) - MAX_LISTED
    card.add(*([f"\n... and {more} more."] if more > 0 else []), "")


def _leaderboard(card: Card, inp: Inputs) -> None:
    board = inp.leaderboard
    metric = str(board.get("metric", "val/macro_f1"))
    header = ["rank", "model"]
    header += [f"val {label}" for _, label in METRICS[:2]]
    header += [f"test {label}" for _, label in METRICS]
    rows = []
    for row in board.get("models", []):
        val, test = row.get("val", {}), row.get("test", {})
        cells = [str(row.get("rank", "")), md.code(row.get("model", ""))]
        cells += [md.with_ci(val.get(k), val.get(f"{k}_ci")) for k, _ in METRICS[:2]]
        cells += [md.with_ci(test.get(k), test.get(f"{k}_ci")) for k, _ in METRICS]
        rows.append(cells)
    card.add(
        "## Leaderboard",
        "",
        f"Ranked by `{metric}` (validation; test never chooses). Brackets: 95 % bootstrap "
        "intervals over the images of each split.",
        "",
        *md.table(header, rows, "rl" + "r" * (len(header) - 2)),
        "",
    )
    sentence = overlap_sentence(board.get("models") or [], metric.split("/", 1)[-1])
    if sentence:
        card.add(sentence, "")


def _chosen(card: Card, inp: Inputs) -> None:
    best = str(inp.best.get("model"))
    test = inp.best_metrics.get("test", {})
    card.add(f"## The chosen model: `{best}`", "")
    per_class = test.get("per_class", {})
    if per_class:
        rows = [
            [
                md.cell(name),
                md.fmt(v.get("precision")),
                md.fmt(v.get("recall")),
                md.fmt(v.get("f1")),
                str(v.get("support", "")),
            ]
            for name, v in per_class.items()
        ]
        card.add(
            *md.table(["artist (test)", "precision", "recall", "F1", "images"], rows, "lrrrr"), ""
        )
    figures = inp.figures
    if "confusion.png" in figures:
        card.add("Test confusion matrix (rows: the true artist):", "")
        card.image(figures["confusion.png"], "confusion", f"{best}: test confusion matrix")
    if "misclassified.png" in figures:
        card.add("Its most confident mistakes on the test set:", "")
        card.image(
            figures["misclassified.png"], "mistakes", f"{best}: most confident mistakes", photo=True
        )
    if "learning_curves.png" in figures:
        card.add("Training:", "")
        card.image(figures["learning_curves.png"], "learning_curves", f"{best}: learning curves")
    for name, caption in HEAT_MAPS.items():
        if name in figures:
            card.add(caption, "")
            card.image(figures[name], Path(name).stem, f"{best}: {Path(name).stem}", photo=True)
    extra = sorted(n for n in figures if n not in KNOWN_FIGURES and n not in HEAT_MAPS)
    if extra:
        card.add("### More figures", "")
        for name in extra:
            card.add(f"`{name}`:", "")
            card.image(figures[name], f"figure-{Path(name).stem}", name, photo=True)


def _augmentation(card: Card, inp: Inputs) -> None:
    if inp.preview is None:
        return
    aug = inp.params.get("augment", {})
    card.add(
        "## Augmentation",
        "",
        f"Each training image plus {aug.get('copies', '?')} augmented copies ("
        + ", ".join(
            f"{k} {aug.get(k, '?')}" for k in ("flip", "rotation", "zoom", "contrast", "brightness")
        )
        + "); validation and test images are never augmented.",
        "",
    )
    card.link(inp.preview, "augmentation preview")


def _galleries(card: Card, inp: Inputs) -> None:
    for content in inp.galleries:
        if not content.images:
            continue
        gallery = content.gallery
        card.add(f"## {gallery.title}", "", gallery.intro, "")
        if content.metrics:
            rows = [[md.code(k), md.fmt(v, ".4g")] for k, v in _flat(content.metrics)]
            card.add(*md.table(["metric", "value"], rows, "lr"), "")
        for path in content.images:
            card.add(f"`{path.name}`:", "")
            card.link(path, path.stem)


def _flat(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"style": {"a": 1}}`` -> ``[("a", 1)]``: one stage's metrics without its top key."""
    if len(metrics) == 1 and not prefix:
        (only,) = metrics.values()
        if isinstance(only, Mapping):
            return _flat(only, ".")
    out: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = key if prefix in ("", ".") else f"{prefix}.{key}"
        if isinstance(value, Mapping):
            out += _flat(value, name)
        elif not isinstance(value, list):
            out.append((name, value))
    return out


def _unknown(card: Card, inp: Inputs) -> None:
    pkg = inp.package
    card.add('## The "unknown" answer', "")
    if not pkg:
        card.add("The model was not packaged in this run (no `reports/package/summary.json`).", "")
        return
    target = _pct(pkg.get("unknown_target_precision"))
    if pkg.get("threshold_reached"):
        card.add(
            f"The service answers **unknown** when the top-1 probability is below "
            f"**{md.fmt(pkg.get('unknown_threshold'))}**: the lowest threshold at which the "
            f"model is right at least {target} of the time on the validation images it answers "
            f"(there: {_pct(pkg.get('val_precision_at_threshold'))} right, on "
            f"{_pct(pkg.get('val_coverage_at_threshold'))} of the validation images).",
            "",
        )
    else:
        card.add(
            f"No threshold reaches a validation precision of {target}: every answer is "
            "flagged unknown.",
            "",
        )


def _limits(card: Card, inp: Inputs) -> None:
    kept = list(inp.select.get("artists_kept", {}))
    dropped = list(inp.select.get("artists_dropped", {}))
    test = inp.best_metrics.get("test", {})
    ci = md.interval(test.get("macro_f1_ci"))
    size = inp.params.get("base", {}).get("image_size", "?")
    lines = [
        f"- It knows {len(kept)} artists ({', '.join(kept)}). A painting by anyone else still "
        "gets one of these names; the unknown flag catches low-confidence answers, it does not "
        "detect other artists or non-paintings (photographs, drawings, details of a painting).",
        f"- Images are centre-cropped and resized to {size}×{size} px: brushwork finer than "
        "that is invisible to it.",
    ]
    if dropped:
        lines.append(
            f"- {len(dropped)} artists had too few paintings to learn and were left out: "
            f"{', '.join(dropped)}."
        )
    if ci is not None:
        lines.append(
            f"- The test set has {test.get('n', '?')} images: the chosen model's test macro-F1 of "
            f"{md.fmt(test.get('macro_f1'))} has a 95 % interval of {md.fmt_ci(ci)}, and two "
            "models closer than such intervals are wide cannot be told apart."
        )
    lines.append(
        "- Models trained from scratch are not bit-reproducible across CPUs: re-running on "
        "another machine moves their metrics (frozen-trunk models agree to ~1e-4)."
    )
    if _is_sample(inp):
        lines.append("- Trained on the synthetic sample: it has never seen a real painting.")
    card.add("## Known limits", "", *lines, "")


def build(inp: Inputs, report_dir: Path, image_dir: Path) -> str:
    """The card's Markdown, to be written into ``report_dir``; the DVC-cached images it shows
    are copied into ``image_dir``, every link is relative to ``report_dir``."""
    card = Card(report_dir, image_dir)
    _summary(card, inp)
    _data(card, inp)
    _leaderboard(card, inp)
    _chosen(card, inp)
    _augmentation(card, inp)
    _galleries(card, inp)
    _unknown(card, inp)
    _limits(card, inp)
    return card.text()


def gallery_images(folder: Path) -> list[Path]:
    """The images at the top of an optional stage's folder, sorted (``overview.png`` first);
    sub-folders (every single result, curves) are left to the stage's own report."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"}]
    return sorted(found, key=lambda p: (p.stem != "overview", p.as_posix()))
