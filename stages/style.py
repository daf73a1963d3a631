"""style: Gatys neural style transfer per artist, a fast feed-forward result beside it, and
whether the pipeline's best classifier attributes the results to the style's artist.

Writes reports/style/ (committed to git, small): <artist_slug>.png (the labelled grid),
results/<artist_slug>/*.png (every result), metrics.json (the headline numbers: losses and
classifier scores averaged over the artists), details.json (per artist: paintings, final
losses, the classifier's score at every checkpoint), timing.json (seconds per Gatys
iteration and per fast image) and curves/<artist_slug>/<loss>_loss.tsv (loss per
iteration, DVC plot data).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from artist_id import stage
from artist_id.config import load_params

MANIFEST = Path("data/raw/manifest.csv")
CLASSES = Path("data/processed/classes.json")
BEST = Path("models/best.json")
OUT = Path("reports/style")
log = logging.getLogger("artist_id.stages.style")


def main() -> None:
    params = load_params()
    sp = params.style

    from artist_id import style
    from artist_id.models import ModelFileError, WeightsError, load_model
    from artist_id.seeding import seed_everything

    stage.expect(WeightsError, ModelFileError, style.FastStyleError)
    seed_everything(params.base.seed)
    manifest = pd.read_csv(MANIFEST, dtype=str, keep_default_na=False)
    classes = stage.read_json(CLASSES)["classes"]
    usable = manifest.loc[manifest["status"] == "ok", "artist"].unique()
    artists = style.choose_artists(sp.artists, list(usable), classes)
    paintings = {
        a: style.choose_paintings(manifest, a, sp.per_artist, params.base.seed) for a in artists
    }
    photos = {name: style.load_photo(name) for name in sp.photos}

    vgg = style.build_vgg(sp.backbone, sp.weights)
    extractor = style.build_extractor(vgg, [*sp.style_layers, sp.content_layer])
    fast = style.FastStylizer() if sp.fast else None
    stylizer = style.Stylizer(sp, extractor, fast)

    best = stage.read_json(BEST)
    classifier = load_model(best["path"], num_classes=len(classes))

    out = stage.fresh_dir(OUT)
    details: dict[str, dict[str, object]] = {}
    timing: dict[str, object] = {}
    for artist in artists:
        slug = paintings[artist][0].slug
        pairs = style.stylize_artist(stylizer, paintings[artist], photos)
        probabilities = [style.pair_probabilities(classifier, classes, artist, p) for p in pairs]
        scored = (
            f"p = {best['model']}'s probability of {artist}"
            if artist in classes
            else f"not one of {best['model']}'s classes: no score"
        )
        style.draw_grid(
            out / f"{slug}.png",
            f"{artist}: Gatys ({sp.backbone} {sp.weights}, {sp.image_size} px, {sp.optimizer})"
            + (" and fast (Magenta)" if fast else "")
            + f"; {scored}",
            pairs,
            probabilities,
            artist,
        )
        for pair in pairs:
            stem = f"{style.photo_stem(pair.photo)}__{Path(pair.painting.path).stem}"
            for name, image in pair.images().items():
                style.save_png(image, out / "results" / slug / f"{stem}__{name}.png")
        for name, frame in style.curve_frames(pairs).items():
            target = out / "curves" / slug / f"{name}.tsv"
            target.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(target, sep="\t", index=False)
        score = style.attribution(classifier, classes, artist, pairs)
        losses = style.final_losses(pairs)
        details[slug] = {
            "artist": artist,
            "paintings": [p.path for p in paintings[artist]],
            "losses": losses,
            "classifier": {"model": best["model"], **score},
        }
        per_iteration = sum(p.run.seconds_per_iteration for p in pairs) / len(pairs)
        per_image = sum(p.fast_seconds for p in pairs) / len(pairs) if fast else None
        timing[slug] = {
            "gatys_seconds_per_iteration": round(per_iteration, 4),
            "fast_seconds_per_image": None if per_image is None else round(per_image, 4),
        }
        log.info(
            "%s: final losses %s; %.3f s/iteration%s; classifier: %s",
            artist,
            losses,
            per_iteration,
            "" if per_image is None else f", fast {per_image:.2f} s/image",
            score.get("p_artist", score.get("note")),
        )
    stage.write_json(out / "metrics.json", {"style": style.headline(details, sp.iterations)})
    stage.write_json(out / "details.json", {"artists": details, "iterations": sp.iterations})
    stage.write_json(out / "timing.json", timing)


if __name__ == "__main__":
    stage.run("style", main)
