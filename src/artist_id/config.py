"""params.yaml -> frozen dataclasses.

Every section of ``params.yaml`` maps to one dataclass below. Unknown keys (top-level
sections included), missing keys, values of the wrong type and values out of range are
errors (:class:`ConfigError`) that name the offending key, so a typo in
``dvc exp run -S ...`` fails at once, before any stage does work, instead of being silently
ignored or ending in a traceback deep inside a model builder.
"""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """params.yaml does not match the expected schema."""


@dataclass(frozen=True)
class BaseParams:
    seed: int
    image_size: int


@dataclass(frozen=True)
class DataParams:
    source: str


@dataclass(frozen=True)
class SampleParams:
    seed: int
    paintings: tuple[int, ...]
    min_side: int
    max_side: int
    greyscale: int
    near_duplicates: int


@dataclass(frozen=True)
class IngestParams:
    max_side: int
    jpeg_quality: int
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class ValidateParams:
    min_side: int
    max_quarantined: float
    paintings_tolerance: float


@dataclass(frozen=True)
class EdaParams:
    thumbnails: int


Balance = Literal["class_weight", "oversample", "undersample", "none"]
Flip = Literal["horizontal", "vertical", "horizontal_and_vertical", "none"]


@dataclass(frozen=True)
class SelectParams:
    min_paintings: int
    dedupe_hamming: int
    val_fraction: float
    test_fraction: float
    balance: Balance


@dataclass(frozen=True)
class AugmentParams:
    copies: int
    flip: Flip
    rotation: float
    zoom: float
    translation: float
    contrast: float
    brightness: float
    preview: int


Optimizer = Literal["adam", "sgd", "rmsprop", "lbfgs"]
Strategy = Literal["default", "mirrored"]


@dataclass(frozen=True)
class ModelParams:
    """One model's training recipe (``train.<model>`` in params.yaml)."""

    learning_rate: float
    weights: str = "none"  # imagenet | none | hed-bsds500 | path to a .weights.h5
    optimizer: Optimizer = "adam"
    dense: tuple[int, ...] = ()  # head sizes; () = the seed's
    dropout: float = 0.5
    # 0: trunk frozen (trained through the feature cache); N: last N conv layers train;
    # -1: the whole trunk trains (the only sensible choice from random weights)
    trainable_trunk_layers: int = 0
    # optional phase 2 after the head has converged: unfreeze the last N conv layers
    fine_tune_layers: int = 0
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-5
    # per-model overrides of train.epochs / train.patience (a cached-feature head is cheap)
    epochs: int | None = None
    patience: int | None = None
    # style_stats only (an error for the other models):
    layers: tuple[str, ...] = ()  # VGG16 layers whose channel mean/std are the features
    image_size: int | None = None  # working size inside the model; None = base.image_size
    l2: float = 0.0  # L2 penalty on the head's Dense kernels (Keras optimizers)
    # optimizer lbfgs (style_stats, linear head): scikit-learn's logistic regression fits the
    # head once per inverse L2 strength C here; the best on validation macro-F1 is kept
    c: tuple[float, ...] = ()
    # VGG16 layers whose channel covariance is added to the statistics (upper triangle, signed
    # square root: c (c + 1) / 2 numbers per layer); () for none
    covariance: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainParams:
    models: tuple[str, ...]
    strategy: Strategy
    batch_size: int
    epochs: int
    patience: int
    cache_features: bool
    cnn_small: ModelParams
    cnn_deep: ModelParams
    vgg16: ModelParams
    resnet50: ModelParams
    style_stats: ModelParams

    def model(self, name: str) -> ModelParams:
        if name not in self.models or not hasattr(self, name):
            raise ConfigError(f"train: unknown model {name!r} (train.models: {self.models})")
        value: ModelParams = getattr(self, name)
        return value


@dataclass(frozen=True)
class FeaturesParams:
    """The feature store (``features`` stage): frozen-trunk features once per image."""

    paintings: bool  # also store style statistics of every usable painting in data/raw
    batch_size: int  # images per trunk pass

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("features.batch_size must be at least 1")


@dataclass(frozen=True)
class EvaluateParams:
    misclassified: int
    explain_mistakes: int  # heat-map overlays of the most confident test mistakes
    explain_correct: int  # ... and of the most confident right answers, per class
    bootstrap_resamples: int = 1000  # resamples behind each metric's interval
    confidence: float = 0.95  # level of the bootstrap intervals


@dataclass(frozen=True)
class LeaderboardParams:
    metric: Literal["macro_f1", "balanced_accuracy", "accuracy"]


@dataclass(frozen=True)
class GenreParams:
    """The multi-label genre model over every artist (``genre``)."""

    min_artists: int  # genres with fewer artists are left out
    min_paintings: int  # genres with fewer paintings are left out
    val_fraction: float  # held-out paintings: validation share (thresholds)
    test_fraction: float  # held-out paintings: test share
    artist_folds: int  # held-out artists: artists are dealt into this many folds
    c: float  # inverse L2 strength of each genre's logistic regression (sklearn's C)
    weighting: Literal["artist", "painting"]  # what weighs the same in training
    bootstrap: int  # resamples for the 95 % intervals of the macro metrics (0 = none)
    fallback_top_k: int  # the service answers this many genres when none passes its threshold

    def __post_init__(self) -> None:
        if self.min_artists < 1 or self.min_paintings < 1:
            raise ConfigError("genre.min_artists and genre.min_paintings must be at least 1")
        fractions = self.val_fraction + self.test_fraction
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1 and fractions < 1):
            raise ConfigError(
                "genre: val_fraction and test_fraction must be in (0, 1) and sum to less than 1"
            )
        if self.artist_folds < 2:
            raise ConfigError("genre.artist_folds must be at least 2")
        if self.c <= 0:
            raise ConfigError("genre.c must be positive")
        if self.bootstrap < 0:
            raise ConfigError("genre.bootstrap must be >= 0")
        if self.fallback_top_k < 1:
            raise ConfigError("genre.fallback_top_k must be at least 1")


@dataclass(frozen=True)
class PeriodsParams:
    """Style by period (``periods``): the map, palettes, what separates the periods."""

    width: int  # years per period (50: half-centuries)
    anchor: Literal["birth", "midpoint", "death"]  # which year of the life span dates it
    min_paintings: int  # periods with fewer paintings get no palette / separation rows
    pca_components: int  # PCA before t-SNE
    perplexity: float  # t-SNE perplexity (capped below the number of paintings)
    thumbnails: int  # paintings drawn on the map
    palette_colours: int  # dominant colours per period (k-means)
    palette_pixels: int  # pixels sampled per period for the k-means
    top_statistics: int  # statistics listed per period
    folds: int  # artist-grouped folds of the period classifier
    c: float  # inverse L2 strength of the period classifier

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ConfigError("periods.width must be at least 1 year")
        if self.pca_components < 2 or self.perplexity <= 0:
            raise ConfigError("periods: pca_components >= 2 and perplexity > 0")
        if min(self.min_paintings, self.palette_colours, self.palette_pixels) < 1:
            raise ConfigError("periods: min_paintings, palette_colours, palette_pixels >= 1")
        if self.thumbnails < 0 or self.top_statistics < 1:
            raise ConfigError("periods: thumbnails >= 0 and top_statistics >= 1")
        if self.folds < 2 or self.c <= 0:
            raise ConfigError("periods: folds >= 2 and c > 0")


@dataclass(frozen=True)
class PackageParams:
    """The packaged service: "unknown" threshold and input limits."""

    unknown_precision: float  # validation precision the "unknown" threshold must reach
    top_k: int  # default length of top_k in answers
    max_bytes: int  # per uploaded image, checked before decoding
    max_pixels: int  # per image, checked from the header before decoding
    formats: tuple[str, ...]  # Pillow format names the service decodes
    max_request_bytes: int  # whole request body, enforced by the server middleware
    max_images: int  # images per /predict_batch request
    read_timeout_s: float  # the whole request body must arrive within this (else 408)
    pixel_budget: int  # pixels being decoded at once across all requests

    def __post_init__(self) -> None:
        if not 0.0 < self.unknown_precision <= 1.0:
            raise ConfigError("package.unknown_precision must be in (0, 1]")
        if self.top_k < 1:
            raise ConfigError("package.top_k must be at least 1")
        if min(self.max_bytes, self.max_pixels, self.max_request_bytes, self.max_images) < 1:
            raise ConfigError("package: max_bytes, max_pixels, max_request_bytes, max_images > 0")
        if self.max_request_bytes < self.max_bytes:
            raise ConfigError("package.max_request_bytes must be at least package.max_bytes")
        if not self.formats:
            raise ConfigError("package.formats needs at least one format")
        # Below the service's 60 s request timeout, which would otherwise answer first (504).
        if not 0 < self.read_timeout_s < 60:
            raise ConfigError("package.read_timeout_s must be in (0, 60) seconds")
        if self.pixel_budget < self.max_pixels:
            raise ConfigError("package.pixel_budget must be at least package.max_pixels")


# The photographs scikit-learn ships (sklearn.datasets.load_sample_image): style's defaults.
SAMPLE_PHOTOS = ("china.jpg", "flower.jpg")
# Your own content photos live here (a dvc.yaml dependency of the style stage).
PHOTOS_DIR = "photos"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_VGG_BLOCK_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


@dataclass(frozen=True)
class StyleParams:
    """Gatys style transfer per artist (``style`` in params.yaml), plus the fast networks."""

    backbone: Literal["vgg16", "vgg19"]
    weights: Literal["hed-bsds500", "imagenet", "none"]  # none: random, for tests only
    artists: tuple[str, ...]  # () = the deck's three where present, else the selected classes
    per_artist: int  # style paintings per artist
    photos: tuple[str, ...]  # SAMPLE_PHOTOS names or paths under PHOTOS_DIR
    image_size: int  # longest side of the optimised image
    checkpoints: tuple[int, ...]  # iterations at which results are kept; the last is the total
    optimizer: Literal["adam", "lbfgs"]
    learning_rate: float  # Adam's, on pixels in [0, 1]
    content_layer: str
    style_layers: tuple[str, ...]
    content_weight: float
    style_weight: float
    tv_weight: float
    fast: bool  # Magenta's feed-forward stylisation beside Gatys

    def __post_init__(self) -> None:
        if self.weights == "hed-bsds500" and self.backbone != "vgg16":
            raise ConfigError(
                "style.weights: hed-bsds500 is a VGG16 trunk; use backbone vgg16 "
                "(or weights imagenet with vgg19)"
            )
        convs = _VGG_BLOCK_CONVS[self.backbone]
        names = [f"block{b}_conv{i}" for b, n in enumerate(convs, 1) for i in range(1, n + 1)]
        for key, layers in (
            ("content_layer", (self.content_layer,)),
            ("style_layers", self.style_layers),
        ):
            bad = [n for n in layers if n not in names]
            if bad:
                raise ConfigError(
                    f"style.{key}: {', '.join(bad)} not a conv layer of {self.backbone} "
                    f"(block<b>_conv<i>, e.g. block1_conv1, block4_conv2)"
                )
        if not self.style_layers or len(set(self.style_layers)) != len(self.style_layers):
            raise ConfigError("style.style_layers: at least one layer, none repeated")
        if self.per_artist < 1:
            raise ConfigError("style.per_artist must be at least 1")
        if not self.photos:
            raise ConfigError(f"style.photos needs at least one photo (e.g. {SAMPLE_PHOTOS[0]})")
        for photo in self.photos:
            path = PurePosixPath(photo)
            if photo in SAMPLE_PHOTOS:
                continue
            if path.parts[:1] != (PHOTOS_DIR,) or ".." in path.parts:
                raise ConfigError(
                    f"style.photos: {photo!r} is neither a scikit-learn sample photo "
                    f"({', '.join(SAMPLE_PHOTOS)}) nor a file under {PHOTOS_DIR}/ "
                    "(the folder DVC tracks for the style stage)"
                )
            if path.suffix.lower() not in PHOTO_SUFFIXES:
                raise ConfigError(f"style.photos: {photo!r} is not a {'/'.join(PHOTO_SUFFIXES)}")
        if not 32 <= self.image_size <= 1024:
            raise ConfigError("style.image_size must be within 32..1024")
        steps = self.checkpoints
        if not steps or steps[0] < 1 or any(b <= a for a, b in itertools.pairwise(steps)):
            raise ConfigError(
                "style.checkpoints: positive iteration counts, increasing (e.g. [100, 1000])"
            )
        if self.learning_rate <= 0:
            raise ConfigError("style.learning_rate must be positive")
        if min(self.content_weight, self.style_weight, self.tv_weight) < 0:
            raise ConfigError("style: content_weight, style_weight and tv_weight must be >= 0")

    @property
    def iterations(self) -> int:
        return self.checkpoints[-1]


@dataclass(frozen=True)
class FiltersParams:
    """What a trained model's layers see (``filters`` in params.yaml)."""

    model: str  # a model of train.models
    per_layer: int  # filters shown per layer, each with its nine top patches

    def __post_init__(self) -> None:
        if not 1 <= self.per_layer <= 64:
            raise ConfigError("filters.per_layer must be within 1..64")


@dataclass(frozen=True)
class Params:
    base: BaseParams
    data: DataParams
    sample: SampleParams
    ingest: IngestParams
    validate: ValidateParams
    eda: EdaParams
    select: SelectParams
    augment: AugmentParams
    features: FeaturesParams
    train: TrainParams
    evaluate: EvaluateParams
    leaderboard: LeaderboardParams
    package: PackageParams
    style: StyleParams
    filters: FiltersParams
    genre: GenreParams
    periods: PeriodsParams


T = TypeVar("T")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (tuples for lists)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} matches none of {tp}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected null, got {value!r}")
        return None
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, _ellipsis) = get_args(tp)
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover - schema bug


def _build(cls: type[T], raw: Any, where: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            raise ConfigError(f"{where}: missing key {name!r}")
        kwargs[name] = _coerce(raw[name], hints[name], f"{where}.{name}")
    return cls(**kwargs)


def parse_params(raw: dict[str, Any]) -> Params:
    """Validate a params mapping (the parsed YAML) and return frozen dataclasses."""
    if not isinstance(raw, dict):
        raise ConfigError("params: expected a mapping at the top level")
    params = _build(Params, raw, "params")
    _check_ranges(params)
    return params


def _check_ranges(p: Params) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    # ResNet50's stem and four strided stages need 32 px; the CNNs pool four or five times.
    need(p.base.image_size >= 32, "base.image_size must be at least 32")
    need(len(p.sample.paintings) >= 2, "sample.paintings needs at least two artists")
    need(all(n >= 2 for n in p.sample.paintings), "sample.paintings: every artist needs >= 2")
    need(
        16 <= p.sample.min_side <= p.sample.max_side,
        "sample: need 16 <= sample.min_side <= sample.max_side",
    )
    need(1 <= p.ingest.jpeg_quality <= 100, "ingest.jpeg_quality must be within 1..100")
    need(p.ingest.max_side >= 16, "ingest.max_side must be at least 16")
    need(0.0 <= p.validate.max_quarantined <= 1.0, "validate.max_quarantined must be in [0, 1]")
    need(0 <= p.select.dedupe_hamming <= 64, "select.dedupe_hamming must be within 0..64")
    fractions = p.select.val_fraction + p.select.test_fraction
    need(
        0 < p.select.val_fraction < 1 and 0 < p.select.test_fraction < 1 and fractions < 1,
        "select: val_fraction and test_fraction must be in (0, 1) and sum to less than 1",
    )
    need(p.augment.copies >= 0, "augment.copies must be >= 0")
    need(
        p.evaluate.explain_mistakes >= 0 and p.evaluate.explain_correct >= 0,
        "evaluate.explain_mistakes and evaluate.explain_correct must be >= 0",
    )
    need(p.evaluate.misclassified >= 0, "evaluate.misclassified must be >= 0")
    need(p.evaluate.bootstrap_resamples >= 100, "evaluate.bootstrap_resamples must be >= 100")
    need(0.5 <= p.evaluate.confidence < 1.0, "evaluate.confidence must be in [0.5, 1)")
    need(len(p.train.models) >= 1, "train.models needs at least one model")
    for name in p.train.models:
        if name not in MODEL_NAMES:
            raise ConfigError(f"train.models: unknown model {name!r} (known: {MODEL_NAMES})")
    need(len(set(p.train.models)) == len(p.train.models), "train.models lists a model twice")
    need(p.train.batch_size >= 1 and p.train.epochs >= 1, "train: batch_size, epochs >= 1")
    need(p.train.patience >= 0, "train.patience must be >= 0")
    for name in MODEL_NAMES:
        _check_model(name, getattr(p.train, name), p.train.epochs)
    need(
        p.train.cache_features
        or p.train.style_stats.optimizer != "lbfgs"
        or "style_stats" not in p.train.models,
        "train.style_stats.optimizer: lbfgs fits the head on stored features: "
        "set train.cache_features: true",
    )
    need(
        p.filters.model in p.train.models,
        f"filters.model: {p.filters.model!r} is not one of train.models {list(p.train.models)}",
    )


# The model zoo's names, and the VGG16 layers style_stats may tap (keras.applications names).
MODEL_NAMES = ("cnn_small", "cnn_deep", "vgg16", "resnet50", "style_stats")
VGG16_LAYER_NAMES = tuple(
    name
    for b, n_convs in enumerate((2, 2, 3, 3, 3), start=1)
    for name in (*(f"block{b}_conv{i}" for i in range(1, n_convs + 1)), f"block{b}_pool")
)
WEIGHTS_KEYWORDS = ("none", "imagenet", "hed-bsds500")
_VGG16_TRUNKS = ("vgg16", "style_stats")
_FROM_SCRATCH = ("cnn_small", "cnn_deep")


def _check_model(name: str, mp: ModelParams, default_epochs: int) -> None:
    """Range checks of ``train.<name>``: every message names the key."""
    key = f"train.{name}"

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(f"{key}.{message}")

    need(mp.learning_rate > 0, "learning_rate must be > 0")
    need(0.0 <= mp.dropout < 1.0, f"dropout must be in [0, 1), got {mp.dropout}")
    need(all(n >= 1 for n in mp.dense), f"dense sizes must be >= 1, got {list(mp.dense)}")
    need(mp.trainable_trunk_layers >= -1, "trainable_trunk_layers must be >= -1 (-1 = all)")
    need(mp.fine_tune_layers >= 0 and mp.fine_tune_epochs >= 0, "fine_tune_*: must be >= 0")
    need(mp.fine_tune_learning_rate > 0, "fine_tune_learning_rate must be > 0")
    need(mp.epochs is None or mp.epochs >= 0, "epochs must be >= 0 (or null)")
    need(mp.patience is None or mp.patience >= 0, "patience must be >= 0 (or null)")
    epochs = default_epochs if mp.epochs is None else mp.epochs
    fine_tuning = mp.fine_tune_epochs if mp.fine_tune_layers else 0
    need(epochs + fine_tuning >= 1, "epochs is 0 and nothing is fine-tuned: nothing would train")
    weights = mp.weights
    if weights in WEIGHTS_KEYWORDS:
        need(
            weights != "hed-bsds500" or name in _VGG16_TRUNKS,
            f"weights: 'hed-bsds500' exists only for {' and '.join(_VGG16_TRUNKS)}; "
            "use none (or imagenet when online)",
        )
        need(
            weights != "imagenet" or name not in _FROM_SCRATCH,
            "weights: the from-scratch CNNs have no ImageNet weights; use none",
        )
    else:
        need(
            weights.endswith(".h5"),
            f"weights: {weights!r} is not one of {', '.join(WEIGHTS_KEYWORDS)} "
            "nor a path to a .weights.h5 / .h5 file",
        )
    if name != "style_stats":
        need(mp.optimizer != "lbfgs", "optimizer: lbfgs is for style_stats' linear head only")
        for field_name, unset in (
            ("layers", ()),
            ("image_size", None),
            ("l2", 0.0),
            ("c", ()),
            ("covariance", ()),
        ):
            need(
                getattr(mp, field_name) == unset,
                f"{field_name} is a style_stats setting; {name} does not use it",
            )
        return
    for what, names in (("layers", mp.layers), ("covariance", mp.covariance)):
        unknown = [n for n in names if n not in VGG16_LAYER_NAMES]
        need(
            not unknown, f"{what}: {unknown} are not VGG16 layers (e.g. block1_conv2, block5_conv3)"
        )
        need(len(set(names)) == len(names), f"{what} repeat a name: {list(names)}")
    need(
        mp.image_size is None or mp.image_size >= 32,
        "image_size must be >= 32 (or null for base.image_size)",
    )
    need(mp.l2 >= 0, "l2 must be >= 0")
    need(all(c > 0 for c in mp.c), f"c: values must be > 0, got {list(mp.c)}")
    if mp.optimizer != "lbfgs":  # c is then unused, as learning_rate and l2 are with lbfgs
        return
    need(bool(mp.c), "c: optimizer lbfgs needs one or more values")
    need(not mp.dense, "optimizer: lbfgs fits a linear head only; set dense: []")
    need(
        mp.trainable_trunk_layers == 0 and not mp.fine_tune_layers,
        "optimizer: lbfgs needs a frozen trunk (trainable_trunk_layers 0, fine_tune_layers 0)",
    )


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: run from the repository root") from exc
    return parse_params(raw)
