"""Helpers of the service tier: the tiny packaged model, test images, a real server.

Importing this module points BENTOML_HOME at a throwaway directory (the store path is resolved
lazily, on first use, so this works as long as nothing touched the store before).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

# localserve imports nothing of BentoML: safe before BENTOML_HOME is set below
from artist_id import localserve
from artist_id import predictions as pr
from artist_id.localserve import Server

# Before any BentoML store access (the store path is resolved lazily, on first use).
HOME = tempfile.mkdtemp(prefix="artist-id-test-bentoml-")
os.environ["BENTOML_HOME"] = HOME
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Imported here, once, with the DeprecationWarnings BentoML's own imports raise (pathspec,
# pydantic) silenced: pytest's filterwarnings marks do not reach collection-time imports.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import bentoml  # noqa: F401

    import artist_id.service  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
REAL_IMAGES = REPO.parent / "shared" / "real-sample" / "images" / "images"
VENV_BIN = Path(sys.executable).parent

CLASSES = ["Edgar Degas", "Pablo Picasso", "Vincent van Gogh"]
# The tiny genre model's outputs and thresholds: Impressionism's 0.0 is always passed, so every
# answer lists it; Post-Impressionism's 1.0 never is.
GENRES = ["Impressionism", "Post-Impressionism", "Surrealism"]
GENRE_THRESHOLDS = {"Impressionism": 0.0, "Post-Impressionism": 1.0, "Surrealism": 0.5}
SIZE = 32
# Small caps so the tests can cross them with small bodies.
MAX_BYTES = 300_000
MAX_PIXELS = 4_000_000
MAX_REQUEST_BYTES = 1_000_000
MAX_IMAGES = 4
READ_TIMEOUT_S = 2.0

ARTISTS_CSV = """id,name,years,genre,nationality,bio,wikipedia,paintings
0,Vincent van Gogh,1853 – 1890,Post-Impressionism,Dutch,"A bio, with a comma",http://en.wikipedia.org/wiki/Vincent_van_Gogh,877
1,Edgar Degas,1834 - 1917,Impressionism,French,Bio,http://en.wikipedia.org/wiki/Edgar_Degas,702
2,Pablo Picasso,1881 - 1973,"Cubism,Surrealism",Spanish,Bio,http://en.wikipedia.org/wiki/Pablo_Picasso,439
3,Frida Kahlo,1907 - 1954,"Primitivism,Surrealism",Mexican,Bio,http://en.wikipedia.org/wiki/Frida_Kahlo,120
"""


@dataclass(frozen=True)
class Project:
    root: Path  # a temporary project directory laid out like the repository after dvc repro
    tag: str  # the BentoML model tag the package stage created
    export: Path  # models/bento/artist-id.tar
    home: Path  # BENTOML_HOME
    genre_tag: str  # the genre model packaged with it (same version)
    genre_export: Path  # models/bento/artist-id-genre.tar


def _train_tiny_model(path: Path) -> tuple[object, np.ndarray]:
    import keras

    from artist_id.models import ModelSpec, build_model, save_model

    keras.utils.set_random_seed(0)
    model = build_model(ModelSpec("cnn_small", SIZE, len(CLASSES), dense=(8,)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(24, SIZE, SIZE, 3)).astype("float32")
    y = np.arange(24) % len(CLASSES)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    save_model(model, path)
    val_x = rng.integers(0, 256, size=(12, SIZE, SIZE, 3)).astype("float32")
    return model, val_x


def _tiny_genre_model(out: Path) -> None:
    """What the genre stage writes: a style_stats trunk (random, one tap) + a sigmoid head."""
    from artist_id import genre as gm
    from artist_id import style_features as sf
    from artist_id.models import save_model

    spec = sf.TrunkSpec(weights="none", layers=("block1_conv2",), image_size=SIZE)
    trunk = sf.build_trunk(spec)
    width = int(trunk.output_shape[-1])
    rng = np.random.default_rng(1)
    head = gm.LinearHead(
        mean=np.zeros(width),
        scale=np.full(width, 50.0),
        coef=rng.normal(0, 0.05, (width, len(GENRES))),
        intercept=np.zeros(len(GENRES)),
    )
    save_model(gm.build_genre_model(trunk, head, GENRES), out / "model.keras")
    per_genre = {g: {"ap": 0.5, "f1": 0.5, "prior_ap": 0.3, "support": 10} for g in GENRES}
    macro = {"ap": 0.5, "f1": 0.5, "prior_ap": 0.3, "all_positive_f1": 0.4}
    (out / "genres.json").write_text(
        json.dumps(
            {
                "genres": GENRES,
                "thresholds": GENRE_THRESHOLDS,
                "fallback_top_k": 2,
                "image_size": SIZE,
                "trunk": spec.to_json(),
                "metrics": {
                    "held_out_artists": {"macro": macro, "per_genre": per_genre},
                    "held_out_paintings": {"macro": macro, "per_genre": per_genre},
                },
                "excluded": ["Cubism"],
            }
        ),
        encoding="utf-8",
    )


def _val_labels(proba: np.ndarray) -> np.ndarray:
    """Labels that make the model right on its 9 most confident validation images and wrong
    on the 3 least: the 0.9-precision threshold is then the 10th highest top-1 probability,
    a value inside the model's range (some answers "unknown", some not)."""
    labels = proba.argmax(axis=1)
    least = np.argsort(proba.max(axis=1), kind="stable")[:3]
    labels[least] = (labels[least] + 1) % len(CLASSES)
    return labels


def make_project(root: Path) -> Project:
    """Write the pipeline outputs the package stage reads, then run the stage in ``root``."""
    model, val_x = _train_tiny_model(root / "models" / "best" / "model.keras")
    _tiny_genre_model(root / "models" / "genre")
    proba = np.asarray(model.predict(val_x, verbose=0))  # type: ignore[attr-defined]
    val_y = _val_labels(proba)
    ids = [f"img_{i}" for i in range(len(val_y))]
    predictions = root / "reports" / "evaluate" / "cnn_small" / "predictions.csv"
    pr.to_csv([pr.table(s, ids, val_y, proba, CLASSES) for s in ("val", "test")], predictions)
    metrics = {"accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.4}
    (root / "models" / "best.json").write_text(
        json.dumps(
            {
                "model": "cnn_small",
                "path": "models/best/model.keras",
                "chosen_by": "val/macro_f1",
                "val": metrics,
                "test": metrics,
            }
        ),
        encoding="utf-8",
    )
    (root / "data" / "processed").mkdir(parents=True)
    (root / "data" / "processed" / "classes.json").write_text(
        json.dumps({"classes": CLASSES}), encoding="utf-8"
    )
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "artists.csv").write_text(ARTISTS_CSV, encoding="utf-8")
    (root / "params.yaml").write_text("base:\n  image_size: 32\n", encoding="utf-8")

    from stages.package import EXPORT_NAME, OUT, run

    from artist_id.config import PackageParams
    from artist_id.packaging import GENRE_EXPORT_NAME

    params = PackageParams(
        unknown_precision=0.9,
        top_k=3,
        max_bytes=MAX_BYTES,
        max_pixels=MAX_PIXELS,
        formats=("JPEG", "PNG", "WEBP"),
        max_request_bytes=MAX_REQUEST_BYTES,
        max_images=MAX_IMAGES,
        read_timeout_s=READ_TIMEOUT_S,
        pixel_budget=MAX_PIXELS,
    )
    cwd = Path.cwd()
    os.chdir(root)
    try:
        run(params, SIZE)
    finally:
        os.chdir(cwd)
    summary = json.loads((root / "reports" / "package" / "summary.json").read_text("utf-8"))
    return Project(
        root,
        summary["tag"],
        root / OUT / EXPORT_NAME,
        Path(HOME),
        summary["genre_tag"],
        root / OUT / GENRE_EXPORT_NAME,
    )


# ------------------------------------------------------------------------------- images


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kwargs)
    return out.getvalue()


def painting(seed: int = 0, size: tuple[int, int] = (120, 90), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def real_jpegs() -> list[Path]:
    files = sorted(REAL_IMAGES.glob("*/*.jpg"))
    if not files:
        pytest.skip(f"real paintings not found at {REAL_IMAGES} (../shared/real-sample absent)")
    return files


def small_real_jpeg() -> bytes:
    """The smallest real painting, re-encoded under the tests' byte cap if needed."""
    path = min(real_jpegs(), key=lambda p: p.stat().st_size)
    data = path.read_bytes()
    if len(data) <= MAX_BYTES:
        return data
    with Image.open(path) as im:
        im.thumbnail((600, 600))
        return encode(im.convert("RGB"), "JPEG", quality=85)


def exif_rotated_jpeg() -> bytes:
    """A landscape JPEG whose EXIF says "rotate 90° clockwise" (orientation 6)."""
    img = painting(3, size=(96, 48))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def png_of(img: Image.Image) -> bytes:
    """Lossless bytes of exactly these pixels (what the service must see after decoding)."""
    return encode(img, "PNG")


def png_bomb(side: int = 5000) -> bytes:
    """A valid greyscale PNG of side x side black pixels in a few kilobytes.

    25 M pixels against the tests' 4 M pixel cap; zlib squeezes the 25 MB of pixel rows into
    about 25 KB. Written chunk by chunk so the test never holds the pixels.
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def raw(data: bytes, content_type: str = "image/jpeg", **params: str) -> dict[str, Any]:
    """Request kwargs (httpx / TestClient) sending ``data`` as the body."""
    return {"content": data, "headers": {"content-type": content_type}, "params": params}


def form(
    data: bytes, name: str = "painting.jpg", field: str = "image", **fields: str
) -> dict[str, Any]:
    """Request kwargs for a multipart upload of ``data`` in ``field``."""
    return {"files": {field: (name, data, "application/octet-stream")}, "data": fields}


def good_inputs() -> dict[str, bytes]:
    """Images every format/mode path of the decoder must accept."""
    rgba = painting(4).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    return {
        "jpeg": encode(painting(0), "JPEG", quality=90),
        "png": encode(painting(1), "PNG"),
        "greyscale_jpeg": encode(painting(2, mode="L"), "JPEG"),
        "rgba_png": encode(rgba, "PNG"),
        "palette_png": encode(painting(5).convert("P"), "PNG"),
        "cmyk_jpeg": encode(painting(6).convert("CMYK"), "JPEG"),
        "webp": encode(painting(7), "WEBP", quality=90),
        "exif_rotated_jpeg": exif_rotated_jpeg(),
    }


def bad_inputs() -> dict[str, tuple[dict[str, Any], int, str]]:
    """name -> (request kwargs for POST /predict, expected status, expected error code)."""
    jpeg = encode(painting(0, size=(200, 150)), "JPEG", quality=90)
    return {
        "empty_body": (raw(b""), 400, "empty"),
        "empty_file": (form(b""), 400, "empty"),
        "random_bytes": (raw(np.random.default_rng(0).bytes(5000)), 415, "not_an_image"),
        "truncated_jpeg": (raw(jpeg[: len(jpeg) // 2]), 422, "truncated"),
        "text_as_png": (raw(b"hello, I am text", "image/png"), 415, "not_an_image"),
        "text_as_jpeg_file": (form(b"just some text\n" * 10, "fake.jpg"), 415, "not_an_image"),
        "image_over_byte_cap": (raw(b"\xff\xd8\xff" + b"\0" * MAX_BYTES), 413, "too_many_bytes"),
        "body_over_request_cap": (raw(b"\0" * (MAX_REQUEST_BYTES + 1)), 413, "request_too_large"),
        "png_decompression_bomb": (raw(png_bomb(), "image/png"), 413, "too_many_pixels"),
        "gif": (raw(encode(painting(8), "GIF"), "image/gif"), 415, "unsupported_format"),
        "bmp_as_jpeg": (raw(encode(painting(9), "BMP")), 415, "unsupported_format"),
        "pickle_content_type": (
            raw(b"\x80\x04K\x01.", "application/vnd.bentoml+pickle"),
            415,
            "unsupported_media_type",
        ),
        "json_url": (
            {"json": {"image": "http://169.254.169.254/latest"}},
            415,
            "unsupported_media_type",
        ),
        "urlencoded_form": (
            {"data": {"image": "http://example.com/a.jpg"}},
            415,
            "unsupported_media_type",
        ),
        "url_in_multipart_field": (
            {"files": {"note": ("n.txt", b"x")}, "data": {"image": "http://example.com/a.jpg"}},
            400,
            "not_a_file",
        ),
        "multipart_without_image": (form(jpeg, field="picture"), 400, "missing_image"),
        "broken_multipart": (
            raw(b"--nope\r\ngarbage", "multipart/form-data; boundary=xyz"),
            400,
            "bad_multipart",
        ),
        "multipart_without_boundary": (
            raw(b"garbage", "multipart/form-data"),
            400,
            "bad_multipart",
        ),
        "two_images_on_predict": (
            {"files": [("image", ("a.jpg", jpeg)), ("image", ("b.jpg", jpeg))]},
            413,
            "too_many_images",
        ),
        "multipart_cut_short": (
            raw(
                b'--b\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\nxx',
                "multipart/form-data; boundary=b",
            ),
            400,
            "bad_multipart",
        ),
        "top_k_as_a_file": (
            {"files": {"image": ("a.jpg", jpeg), "top_k": ("k.txt", b"2")}},
            422,
            "invalid_top_k",
        ),
        "top_k_zero": (raw(jpeg, top_k="0"), 422, "invalid_top_k"),
        "top_k_not_a_number": (form(jpeg, top_k="three"), 422, "invalid_top_k"),
        "top_k_above_classes": (raw(jpeg, top_k=str(len(CLASSES) + 1)), 422, "invalid_top_k"),
    }


# ------------------------------------------------------------------------------- server


@contextlib.contextmanager
def serve(target: str, cwd: Path, log: Path, timeout: float = 180.0) -> Iterator[Server]:
    """``bentoml serve <target>`` with the tests' BentoML home and this checkout's code."""
    env = {"BENTOML_HOME": HOME, "PYTHONPATH": str(REPO / "src")}
    with localserve.serve(target, cwd, log, env, timeout) as server:
        yield server
