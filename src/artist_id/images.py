"""Safe image decoding, shared by the ingest stage (batch) and the service (untrusted uploads).

Every input is treated as hostile: the byte cap is checked before anything is read or decoded,
the format is decided by Pillow from the content (only allow-listed plugins are even tried),
the pixel count is checked from the header before any pixel buffer is allocated, and truncated
files are rejected rather than silently padded with grey. Any failure in :func:`decode_bytes` or
:func:`decode_file` surfaces as :class:`ImageError` with a stable ``reason`` code and the HTTP
status the service answers, never as another exception type.

The module also holds the image transforms that training and serving must share
(:func:`fit_square`), the canonical JPEG encoder, the perceptual hash used for de-duplication
and how many images of a size one pass through a network takes (:func:`per_pass`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import stat
import struct
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy.fft import dctn

logger = logging.getLogger(__name__)

DEFAULT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP")

Reason = Literal[
    "empty",
    "too_many_bytes",
    "unsupported_format",
    "not_an_image",
    "truncated",
    "too_many_pixels",
    "decode_error",
]

STATUS_BY_REASON: Mapping[str, int] = {
    "empty": 400,
    "too_many_bytes": 413,
    "too_many_pixels": 413,
    "unsupported_format": 415,
    "not_an_image": 415,
    "truncated": 422,
    "decode_error": 422,
}
"""Every reason code :class:`ImageError` can carry, with the HTTP status the service answers."""

# Magic numbers of the allow-listed formats. Only used to word the error for a file that claims
# to be one of them but that Pillow cannot open; the format itself is always decided by Pillow.
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "WEBP": (b"RIFF",),  # plus b"WEBP" at offset 8, checked in _claimed_format
}

# Pillow's wording for input that ends early: ImageFile.load ("image file is truncated ..."),
# ImageFile._safe_read while parsing headers ("Truncated File Read") and the decoders' -2 error
# ("broken data stream when reading image file").
_TRUNCATED_MARKERS = ("image file is truncated", "truncated file read", "broken data stream")

_HASH_RE = re.compile(r"[0-9a-fA-F]{16}")


class ImageError(ValueError):
    """Rejected input.

    ``reason`` is a short stable code (see :data:`STATUS_BY_REASON`), ``status`` the HTTP status
    the service answers and ``str()`` a message the user can act on.
    """

    reason: Reason
    status: int

    def __init__(self, reason: Reason, message: str) -> None:
        if reason not in STATUS_BY_REASON:
            raise ValueError(f"unknown ImageError reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.status = STATUS_BY_REASON[reason]
        self.message = message

    def __reduce__(self) -> tuple[type[ImageError], tuple[Reason, str]]:
        # copy.copy() and any cross-process transport rebuild an exception from __reduce__,
        # by default __init__(*args) with args == (message,): wrong for this two-argument
        # constructor. (Ingest decodes in threads today, so nothing crosses a process.)
        return (type(self), (self.reason, self.message))


@dataclass(frozen=True)
class DecodeLimits:
    """Caps applied before decoding: file size, pixel count and the format allowlist."""

    max_bytes: int = 50_000_000
    max_pixels: int = 40_000_000
    formats: tuple[str, ...] = DEFAULT_FORMATS

    def __post_init__(self) -> None:
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int):
            raise TypeError(f"max_bytes must be an int, got {self.max_bytes!r}")
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int):
            raise TypeError(f"max_pixels must be an int, got {self.max_pixels!r}")
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise ValueError("max_bytes and max_pixels must be positive")
        if not self.formats or not all(isinstance(f, str) for f in self.formats):
            raise ValueError(f"formats must be a non-empty tuple of str, got {self.formats!r}")
        formats = tuple(f.upper() for f in self.formats)
        object.__setattr__(self, "formats", formats)
        # The default instance is built at import time (as a default argument), so only
        # custom allowlists pay for registering Pillow's plugins to check the names.
        if formats != DEFAULT_FORMATS:
            Image.init()
            unknown = [f for f in formats if f not in Image.OPEN]
            if unknown:
                raise ValueError(f"formats not readable by this Pillow build: {unknown}")


@dataclass(frozen=True)
class Decoded:
    """A decoded image and what the file said about itself."""

    image: Image.Image  # mode "RGB", EXIF orientation applied, fully loaded
    source_format: str  # Pillow's name, e.g. "JPEG" ("MPO" for multi-picture camera JPEGs)
    source_mode: str  # mode before conversion, e.g. "CMYK", "I;16", "P"
    source_width: int  # as stored in the file, before the EXIF transpose
    source_height: int


_DEFAULT_LIMITS = DecodeLimits()


def decode_bytes(
    data: bytes, limits: DecodeLimits = _DEFAULT_LIMITS, *, min_side: int | None = None
) -> Decoded:
    """Decode an in-memory image (e.g. an upload); raises only :class:`ImageError`.

    ``min_side``: see :func:`open_bytes`.
    """
    with open_bytes(data, limits, min_side=min_side) as pending:
        return pending.decode()


def open_bytes(
    data: bytes, limits: DecodeLimits = _DEFAULT_LIMITS, *, min_side: int | None = None
) -> PendingDecode:
    """Check an in-memory image's caps from its header, without decoding its pixels.

    The returned :class:`PendingDecode` says how many pixels :meth:`PendingDecode.decode` will
    allocate, so a caller can bound the pixels decoded at once (the service's pixel budget).
    With ``min_side``, the image is decoded at a reduced scale whose shorter side stays at
    least ``min_side``: JPEG by libjpeg's DCT scaling (1/2, 1/4 or 1/8: Pillow's draft mode,
    several times faster and lighter on large photos), other formats by averaging blocks right
    after decoding, before any colour conversion. ``None`` decodes at full size, as ingest does.
    Raises only :class:`ImageError`.
    """
    if min_side is not None and min_side < 1:
        raise ValueError(f"min_side must be at least 1, got {min_side}")
    try:
        _check_size(len(data), limits)
        return PendingDecode(bytes(data), limits, min_side)
    except ImageError:
        raise
    except Exception as exc:  # the boundary: nothing but ImageError may escape
        logger.warning("unexpected failure opening an in-memory image", exc_info=True)
        raise ImageError("decode_error", "the image could not be decoded") from exc


def decode_file(
    path: str | os.PathLike[str],
    limits: DecodeLimits = _DEFAULT_LIMITS,
    *,
    min_side: int | None = None,
) -> Decoded:
    """Decode an image file; its size is checked with ``os.stat`` before any byte is read.

    Raises only :class:`ImageError`; a missing or unreadable file is ``decode_error``.
    ``min_side``: see :func:`open_bytes`.
    """
    try:
        file = Path(path)
        try:
            info = file.stat()
            # A directory or FIFO would fail or block on read(): refuse it up front.
            if not stat.S_ISREG(info.st_mode):
                raise ImageError("decode_error", f"cannot read {file}: not a regular file")
            _check_size(info.st_size, limits)
            with file.open("rb") as fh:
                # Read one byte past the cap: the file may have grown since stat().
                data = fh.read(limits.max_bytes + 1)
        except OSError as exc:
            raise ImageError("decode_error", f"cannot read {file}: {exc.strerror or exc}") from exc
        _check_size(len(data), limits)
        with PendingDecode(data, limits, min_side) as pending:
            return pending.decode()
    except ImageError:
        raise
    except Exception as exc:  # the boundary: nothing but ImageError may escape
        logger.warning("unexpected failure decoding %s", path, exc_info=True)
        raise ImageError("decode_error", "the image could not be decoded") from exc


def _check_size(size: int, limits: DecodeLimits) -> None:
    if size == 0:
        raise ImageError("empty", "the file is empty (0 bytes)")
    if size > limits.max_bytes:
        raise ImageError(
            "too_many_bytes", f"file is {size:,} bytes, the limit is {limits.max_bytes:,}"
        )


@contextlib.contextmanager
def _pillow_errors(data: bytes, formats: tuple[str, ...]) -> Iterator[None]:
    """Turn whatever Pillow raises on hostile input into :class:`ImageError`."""
    # Pillow warns (and above 2x errors) about huge images inside Image.open. Escalate the
    # warning locally instead of changing the global Image.MAX_IMAGE_PIXELS, which other code
    # in the process (Keras, BentoML) may rely on.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(
                "too_many_pixels", f"image is too large to decode safely: {exc}"
            ) from exc
        except UnidentifiedImageError as exc:
            raise _unidentified(data, formats) from exc
        except OSError as exc:
            raise _load_failure(data, exc) from exc
        except (SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
            # Pillow's plugins signal malformed structure with these.
            raise ImageError("decode_error", f"the {_fmt_name(data)} is damaged: {exc}") from exc


# Modes Image.reduce averages directly; others are converted to RGB before reducing.
_REDUCIBLE_MODES = ("L", "RGB", "RGBA", "LA", "I", "F")


class PendingDecode:
    """An image whose header passed the caps; its pixels are not decoded yet.

    Use as a context manager (closes the file) and call :meth:`decode` once. ``pixels`` is the
    size of the pixel buffer the decoder will allocate (after any draft-mode reduction).
    """

    def __init__(self, data: bytes, limits: DecodeLimits, min_side: int | None) -> None:
        self._data = data
        self._formats = limits.formats
        self._min_side = min_side
        with _pillow_errors(data, limits.formats):
            im = Image.open(io.BytesIO(data), formats=limits.formats)
            try:
                self.source_format = im.format or "unknown"
                self.source_mode = im.mode
                self.source_width, self.source_height = im.size
                pixels = self.source_width * self.source_height
                # The header is all Pillow has read so far: refuse before any pixel buffer.
                if pixels > limits.max_pixels:
                    raise ImageError(
                        "too_many_pixels",
                        f"image is {self.source_width:,} x {self.source_height:,} = "
                        f"{pixels:,} pixels, the limit is {limits.max_pixels:,}",
                    )
                if min_side is not None and self.source_format in ("JPEG", "MPO"):
                    # libjpeg scales by 1/2, 1/4 or 1/8 while decoding, keeping both sides at
                    # least min_side (so the shorter side is too).
                    im.draft(None, (min_side, min_side))
            except BaseException:
                im.close()
                raise
        self._image: Image.Image | None = im
        self.pixels = im.size[0] * im.size[1]

    def __enter__(self) -> PendingDecode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._image is not None:
            self._image.close()
            self._image = None

    def decode(self) -> Decoded:
        """Decode the pixels: RGB, EXIF orientation applied; raises only :class:`ImageError`."""
        im = self._image
        if im is None:
            raise RuntimeError("PendingDecode.decode() called twice or after close()")
        try:
            with _pillow_errors(self._data, self._formats):
                # Multi-frame files (animated WebP/PNG, MPO) stay on their first frame.
                im.load()
                if self._min_side is None:
                    oriented = _exif_transpose(im)
                else:
                    oriented = _exif_transpose(_reduce(im, self._min_side))
            plain = oriented.mode == "RGB" and "transparency" not in oriented.info
            rgb = oriented if plain else to_rgb(oriented)
        except ImageError:
            raise
        except Exception as exc:  # the boundary: nothing but ImageError may escape
            logger.warning("unexpected failure decoding an image", exc_info=True)
            raise ImageError("decode_error", "the image could not be decoded") from exc
        finally:
            self.close()
        return Decoded(
            image=rgb,
            source_format=self.source_format,
            source_mode=self.source_mode,
            source_width=self.source_width,
            source_height=self.source_height,
        )


def _reduce(im: Image.Image, min_side: int) -> Image.Image:
    """Average ``factor`` x ``factor`` blocks, keeping the shorter side >= ``min_side``.

    Done before the colour conversion so that it never runs on a full-size copy. Transparency
    is averaged premultiplied (Pillow's reduce does so for RGBA/LA), which equals compositing
    on white first. The EXIF orientation is carried over for :func:`_exif_transpose`.
    """
    factor = min(im.size) // min_side
    if factor < 2:
        return im
    exif = im.getexif()
    source = im if im.mode in _REDUCIBLE_MODES and "transparency" not in im.info else to_rgb(im)
    reduced = source.reduce(factor)
    if exif:
        reduced.info["exif"] = exif.tobytes()
    return reduced


def _exif_transpose(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; always returns a new, detached image."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception:
        # Malformed EXIF is common in camera files and says nothing about the pixels, so keep
        # the image as stored rather than reject an otherwise good painting.
        logger.warning("ignoring unreadable EXIF orientation", exc_info=True)
        return im.copy()


def _claimed_format(data: bytes) -> str | None:
    """The allow-listed format whose magic number starts ``data``, if any."""
    for name, sigs in _SIGNATURES.items():
        if any(data.startswith(s) for s in sigs):
            if name == "WEBP" and data[8:12] != b"WEBP":
                continue
            return name
    return None


def _fmt_name(data: bytes) -> str:
    claimed = _claimed_format(data)
    return f"{claimed} file" if claimed else "file"


def _webp_cut_short(data: bytes) -> bool:
    """True when a RIFF/WEBP container declares more bytes than it holds."""
    if _claimed_format(data) != "WEBP" or len(data) < 8:
        return False
    (declared,) = struct.unpack("<I", data[4:8])
    return len(data) < declared + 8


def _unidentified(data: bytes, formats: tuple[str, ...]) -> ImageError:
    """Classify input that no allow-listed plugin accepted."""
    allowed = ", ".join(formats)
    if _webp_cut_short(data):
        return ImageError("truncated", "the WEBP file is cut short (incomplete upload or copy?)")
    claimed = _claimed_format(data)
    if claimed is not None and claimed in formats:
        return ImageError(
            "decode_error", f"the file starts like a {claimed} but its header is damaged"
        )
    other = _identify_any(data)
    if other is not None:
        return ImageError(
            "unsupported_format", f"{other} images are not accepted; send one of: {allowed}"
        )
    return ImageError("not_an_image", f"the file is not an image (accepted formats: {allowed})")


def _identify_any(data: bytes) -> str | None:
    """Pillow's name for the format of ``data`` when any plugin recognises it (header only)."""
    try:
        with warnings.catch_warnings():
            # This only names the format for the error message: silence plugin warnings and
            # treat a decompression bomb in a refused format like any other refused file.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.format or "unknown"
    except Exception:
        return None


def _load_failure(data: bytes, exc: OSError) -> ImageError:
    text = str(exc).lower()
    if any(marker in text for marker in _TRUNCATED_MARKERS) or _webp_cut_short(data):
        return ImageError(
            "truncated", f"the {_fmt_name(data)} is cut short (incomplete upload or copy?)"
        )
    return ImageError("decode_error", f"the {_fmt_name(data)} could not be decoded: {exc}")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to a new RGB image.

    Transparency (alpha channels, palette or colour-key ``transparency``) is composited on
    white. High bit-depth greyscale is scaled, not clipped: ``I;16*`` and ``I`` holding values in
    0..65535 map 65535 -> 255; ``F`` in 0..1 maps 1.0 -> 255; anything else outside 0..255 is
    stretched linearly from its min..max.
    """
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        grey = Image.fromarray(_wide_to_uint8(img), mode="L")
        key = img.info.get("transparency")
        if isinstance(key, int | float):
            # Colour-key transparency refers to the raw (wide) sample values.
            alpha = (np.asarray(img) != key).astype(np.uint8) * 255
            grey_a = Image.merge("LA", (grey, Image.fromarray(alpha, mode="L")))
            return _on_white(grey_a.convert("RGBA"))
        return grey.convert("RGB")
    if mode == "La":
        return _on_white(img.convert("LA").convert("RGBA"))
    has_alpha = mode in ("RGBA", "RGBa", "LA", "PA")
    keyed = "transparency" in img.info
    palette_alpha = mode == "P" and img.palette is not None and "A" in img.palette.mode
    if has_alpha or keyed or palette_alpha:
        return _on_white(img.convert("RGBA"))
    # "1", "L", "P", "CMYK" (Pillow undoes Adobe's inverted CMYK when decoding), "YCbCr", ...
    return img.convert("RGB")


def _on_white(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _wide_to_uint8(img: Image.Image) -> npt.NDArray[np.uint8]:
    """Scale an I;16 / I / F image to 0..255 without clipping."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16") and arr.dtype.kind == "u":
        wide = arr.astype(np.uint32)
        # Integer round-to-nearest of v * 255 / 65535: 65535 -> 255, 32768 -> 128.
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    values = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 0.0
    if img.mode == "I" and lo >= 0 and hi <= 65535:
        scaled = values * (255.0 / 65535.0)  # 16-bit samples (PNG/TIFF convention)
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        scaled = values * 255.0  # normalised floats
    elif lo >= 0 and hi <= 255:
        scaled = values
    elif hi > lo:
        scaled = (values - lo) * (255.0 / (hi - lo))
    else:
        scaled = np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def resize_max_side(img: Image.Image, max_side: int) -> Image.Image:
    """Downscale (LANCZOS, aspect kept) so the longest side is at most ``max_side``.

    Never upscales: a smaller image comes back as an unchanged copy.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    width, height = img.size
    longest = max(width, height)
    if longest <= max_side:
        return img.copy()
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize (LANCZOS) to ``size`` x ``size``.

    This is the model-input transform: training data prep and the service must both use it.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    width, height = img.size
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    # Crop first (rather than resize(box=...)) so pixels outside the square never leak in
    # through the filter support.
    square = img.crop((left, top, left + side, top + side))
    if side == size:
        return square
    return square.resize((size, size), Image.Resampling.LANCZOS)


def square_array(img: Image.Image, size: int) -> npt.NDArray[np.uint8]:
    """:func:`fit_square` of the RGB image as a ``(size, size, 3)`` uint8 array: a model input."""
    return np.asarray(fit_square(img.convert("RGB"), size), dtype=np.uint8)


def encode_jpeg(img: Image.Image, quality: int = 92) -> bytes:
    """Encode as a baseline RGB JPEG with no metadata: the same pixels give the same bytes.

    (Byte-identical for a given Pillow/libjpeg-turbo build; upgrading Pillow may change bytes.)
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    plain_rgb = img.mode == "RGB" and "transparency" not in img.info
    rgb = img.copy() if plain_rgb else to_rgb(img)
    # Pillow's JPEG writer falls back to im.info for some keys (e.g. "comment"): start clean
    # so nothing from the source file (EXIF, ICC, XMP, comments) reaches the output.
    rgb.info = {}
    out = io.BytesIO()
    rgb.save(
        out,
        format="JPEG",
        quality=quality,
        subsampling="4:2:0",
        optimize=False,
        progressive=False,
        exif=b"",
    )
    return out.getvalue()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def phash(img: Image.Image) -> str:
    """64-bit DCT perceptual hash as 16 lowercase hex characters.

    Greyscale (transparency on white) -> 32x32 LANCZOS -> orthonormal 2-D DCT-II -> the 8x8
    lowest frequencies, each bit set when the coefficient exceeds the median of the 63 AC
    coefficients (the DC term, i.e. mean brightness, is left out of the median so it cannot
    bias the threshold). Bits are row-major, most significant first.
    """
    grey = img if img.mode == "L" else (img if img.mode == "RGB" else to_rgb(img)).convert("L")
    small = grey.resize((32, 32), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    low = dctn(pixels, type=2, norm="ortho")[:8, :8]
    # Round away floating-point noise so flat regions (AC ~ +-1e-13) hash the same everywhere.
    low = np.round(low, 6)
    median = np.median(low.ravel()[1:])
    bits = (low > median).ravel()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def _parse_hash(value: str) -> int:
    if not isinstance(value, str) or not _HASH_RE.fullmatch(value):
        raise ValueError(f"not a 16-hex-digit perceptual hash: {value!r}")
    return int(value, 16)


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two :func:`phash` strings."""
    return (_parse_hash(a) ^ _parse_hash(b)).bit_count()


# Popcount of every byte value, for NumPy builds without np.bitwise_count (NumPy < 2.0).
_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount_u64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    bitwise_count = getattr(np, "bitwise_count", None)
    if bitwise_count is not None:
        return np.asarray(bitwise_count(x), dtype=np.uint8)
    as_bytes = x.view(np.uint8).reshape(*x.shape, 8)
    return _BYTE_POPCOUNT[as_bytes].sum(axis=-1, dtype=np.uint8)


def phash_matrix_distances(hashes: Sequence[str], block_rows: int = 512) -> npt.NDArray[np.uint8]:
    """(n, n) uint8 matrix of pairwise Hamming distances between :func:`phash` strings.

    Vectorised in row blocks so the uint64 XOR temporaries stay at ``block_rows * n * 8`` bytes
    (about 37 MB for n = 9,000) next to the n*n result.
    """
    if block_rows < 1:
        raise ValueError(f"block_rows must be at least 1, got {block_rows}")
    values = np.array([_parse_hash(h) for h in hashes], dtype=np.uint64)
    n = values.shape[0]
    out = np.empty((n, n), dtype=np.uint8)
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        xor = np.bitwise_xor(values[start:stop, None], values[None, :])
        out[start:stop] = _popcount_u64(xor)
    return out


# How many images one pass through a conv network takes: its feature maps grow with the pixels
# of the batch (VGG16's block1 alone is 64 float32 per pixel: a forward pass over 32 images at
# 512 px took 18 GB of RAM), so the batch shrinks as the images grow. A forward pass keeps 32
# images up to 224 px; a gradient pass keeps every activation of the network (about 0.5 GB per
# 512-px image through VGG16), so it gets a quarter of that budget: 4 images at 512 px.
FORWARD_PIXELS = 32 * 224 * 224
GRADIENT_PIXELS = 4 * 512 * 512


def per_pass(height: int, width: int, *, pixels: int = FORWARD_PIXELS, most: int = 32) -> int:
    """Images of ``height`` x ``width`` per network pass: ``pixels`` in all, 1 to ``most``."""
    return max(1, min(most, pixels // max(1, height * width)))
