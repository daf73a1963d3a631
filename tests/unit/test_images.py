"""Unit tests for artist_id.images: generated bad-file corpus, colours, transforms, hashes.

Every fixture is made here, in memory or in tmp_path; nothing is committed.
"""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, JpegImagePlugin

from artist_id import images
from artist_id.images import (
    DEFAULT_FORMATS,
    STATUS_BY_REASON,
    DecodeLimits,
    ImageError,
    decode_bytes,
    decode_file,
    encode_jpeg,
    fit_square,
    hamming,
    phash,
    phash_matrix_distances,
    resize_max_side,
    sha256_hex,
    to_rgb,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


# --- corpus builders -------------------------------------------------------------------------


def _save(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kwargs)
    return out.getvalue()


def _noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Incompressible pixels, so a cut file is cut inside the pixel data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _painting(seed: int, size: int = 192) -> Image.Image:
    """Smooth random structure (upsampled coarse noise): something a perceptual hash can see."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(coarse, "RGB").resize((size, size), Image.Resampling.BICUBIC)


def _png_declaring(width: int, height: int) -> bytes:
    """A valid 1x1 greyscale PNG whose IHDR is rewritten to claim width x height."""
    data = bytearray(_save(Image.new("L", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _reject(data: bytes, limits: DecodeLimits | None = None) -> ImageError:
    with pytest.raises(ImageError) as info:
        decode_bytes(data) if limits is None else decode_bytes(data, limits)
    err = info.value
    assert err.status == STATUS_BY_REASON[err.reason]
    assert str(err)
    return err


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 6) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def _px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


# --- rejected input ----------------------------------------------------------------------------


def test_zero_bytes_is_empty(tmp_path: Path) -> None:
    err = _reject(b"")
    assert (err.reason, err.status) == ("empty", 400)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        decode_file(empty)
    assert info.value.reason == "empty"


def test_random_bytes_are_not_an_image() -> None:
    data = np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    err = _reject(data)
    assert (err.reason, err.status) == ("not_an_image", 415)


def test_text_file_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "painting.jpg"
    fake.write_text("Vincent van Gogh, The Starry Night, 1889\n" * 20)
    with pytest.raises(ImageError) as info:
        decode_file(fake)
    assert (info.value.reason, info.value.status) == ("not_an_image", 415)


@pytest.mark.parametrize(
    ("fmt", "cut"),
    [("JPEG", 0.5), ("JPEG", 0.9), ("PNG", 0.5), ("WEBP", 0.5)],
)
def test_truncated_file_is_rejected(fmt: str, cut: float) -> None:
    data = _save(_noise((160, 120)), fmt)
    err = _reject(data[: int(len(data) * cut)])
    assert (err.reason, err.status) == ("truncated", 422)
    assert "cut short" in str(err)


def test_jpeg_cut_inside_its_header_is_truncated() -> None:
    err = _reject(_save(_noise((64, 64)), "JPEG")[:200])
    assert err.reason == "truncated"


def test_truncated_file_on_disk(tmp_path: Path) -> None:
    data = _save(_noise((160, 120)), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        decode_file(path)
    assert info.value.reason == "truncated"


def test_png_with_damaged_header_is_a_decode_error() -> None:
    data = bytearray(_save(Image.new("RGB", (8, 8), RED), "PNG"))
    data[30] ^= 0xFF  # inside the IHDR checksum
    err = _reject(bytes(data))
    assert (err.reason, err.status) == ("decode_error", 422)
    assert "PNG" in str(err)


@pytest.mark.parametrize(("fmt", "mode"), [("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB")])
def test_valid_image_in_refused_format_is_unsupported(fmt: str, mode: str) -> None:
    err = _reject(_save(Image.new(mode, (16, 16)), fmt))
    assert (err.reason, err.status) == ("unsupported_format", 415)
    assert fmt in str(err)
    assert "JPEG" in str(err)  # tells the user what to send instead


def test_format_allowlist_is_configurable() -> None:
    jpeg = _save(Image.new("RGB", (16, 16), RED), "JPEG")
    err = _reject(jpeg, DecodeLimits(formats=("png",)))
    assert err.reason == "unsupported_format"
    assert decode_bytes(_save(Image.new("RGB", (16, 16)), "PNG"), DecodeLimits(formats=("png",)))


def test_header_declaring_huge_size_is_refused_before_decoding() -> None:
    # 400 MP declared in a ~70 byte file: beyond even Pillow's own decompression-bomb error.
    data = _png_declaring(20_000, 20_000)
    assert len(data) < 100
    err = _reject(data)
    assert (err.reason, err.status) == ("too_many_pixels", 413)


def test_real_png_bomb_over_the_pixel_cap() -> None:
    # 7000 x 7000 = 49 MP of zeros in mode "1" (6 MB in memory) compresses to a few KB.
    data = _save(Image.new("1", (7000, 7000)), "PNG")
    assert len(data) < 50_000
    err = _reject(data)
    assert err.reason == "too_many_pixels"
    assert "49,000,000 pixels" in str(err)
    assert "40,000,000" in str(err)


def test_pillow_bomb_warning_is_escalated_locally() -> None:
    # 100 MP is between Pillow's warning (89 MP) and error (179 MP) thresholds; our own cap is
    # raised above it, so only the escalated warning can stop this file.
    filters_before = list(warnings.filters)
    max_before = Image.MAX_IMAGE_PIXELS
    err = _reject(_png_declaring(10_000, 10_000), DecodeLimits(max_pixels=10**9))
    assert err.reason == "too_many_pixels"
    assert warnings.filters == filters_before
    assert max_before == Image.MAX_IMAGE_PIXELS


def test_pixel_cap_boundary() -> None:
    limits = DecodeLimits(max_pixels=100)
    assert decode_bytes(_save(Image.new("RGB", (10, 10)), "PNG"), limits).image.size == (10, 10)
    err = _reject(_save(Image.new("RGB", (11, 10)), "PNG"), limits)
    assert err.reason == "too_many_pixels"


def test_byte_cap_on_bytes() -> None:
    data = _save(_noise((64, 64)), "PNG")
    err = _reject(data, DecodeLimits(max_bytes=len(data) - 1))
    assert (err.reason, err.status) == ("too_many_bytes", 413)
    assert f"{len(data):,} bytes" in str(err)
    assert decode_bytes(data, DecodeLimits(max_bytes=len(data))).image.size == (64, 64)


def test_oversized_file_is_refused_from_stat_without_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "huge.jpg"
    with big.open("wb") as fh:
        fh.truncate(61_000_000)  # sparse: no real disk or memory used

    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file must not be opened")

    monkeypatch.setattr(Path, "open", no_read)
    with pytest.raises(ImageError) as info:
        decode_file(big)
    assert (info.value.reason, info.value.status) == ("too_many_bytes", 413)
    assert str(info.value) == "file is 61,000,000 bytes, the limit is 50,000,000"


def test_missing_file_and_directory_are_image_errors(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.jpg", tmp_path):
        with pytest.raises(ImageError) as info:
            decode_file(path)
        assert info.value.reason == "decode_error"
        assert "cannot read" in str(info.value)


def test_unexpected_failures_become_decode_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(img: Image.Image) -> Image.Image:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(images, "to_rgb", boom)
    data = _save(Image.new("L", (8, 8)), "PNG")  # an "L" image goes through to_rgb
    path = tmp_path / "grey.png"
    path.write_bytes(data)
    for call in (lambda: decode_bytes(data), lambda: decode_file(path)):
        with pytest.raises(ImageError) as info:
            call()
        assert (info.value.reason, info.value.status) == ("decode_error", 422)
        assert "internal detail" not in str(info.value)
        assert isinstance(info.value.__cause__, RuntimeError)


def _mutations() -> st.SearchStrategy[tuple[str, list[tuple[int, int]], float]]:
    return st.tuples(
        st.sampled_from(["JPEG", "PNG", "WEBP"]),
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
        st.floats(0.0, 1.0),
    )


_VALID = {fmt: _save(_noise((48, 40), seed=5), fmt) for fmt in ("JPEG", "PNG", "WEBP")}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_mutations())
def test_damaged_files_only_ever_raise_image_error(
    case: tuple[str, list[tuple[int, int]], float],
) -> None:
    fmt, flips, keep = case
    data = bytearray(_VALID[fmt])
    for pos, value in flips:
        data[pos % len(data)] = value
    data = data[: max(0, int(len(data) * keep))] if keep < 0.999 else data
    try:
        decoded = decode_bytes(bytes(data))
    except ImageError as err:
        assert err.reason in STATUS_BY_REASON
    else:
        assert decoded.image.mode == "RGB"
        assert decoded.image.size == (48, 40)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_only_ever_raise_image_error(data: bytes) -> None:
    try:
        decode_bytes(data)
    except ImageError as err:
        assert err.reason in STATUS_BY_REASON


# --- decoded input -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_plain_rgb_roundtrip(fmt: str, tmp_path: Path) -> None:
    src = Image.new("RGB", (30, 20), (40, 120, 200))
    data = _save(src, fmt, quality=95) if fmt != "PNG" else _save(src, fmt)
    path = tmp_path / "img.bin"  # the extension says nothing: content decides
    path.write_bytes(data)
    for decoded in (decode_bytes(data), decode_file(path), decode_file(str(path))):
        assert decoded.source_format == fmt
        assert decoded.source_mode == "RGB"
        assert (decoded.source_width, decoded.source_height) == (30, 20)
        assert decoded.image.mode == "RGB"
        assert decoded.image.size == (30, 20)
        assert _close(_px(decoded.image, (15, 10)), (40, 120, 200))


def test_cmyk_jpeg_becomes_correct_rgb() -> None:
    src = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # pure red in CMYK
    src.paste((255, 0, 255, 0), (16, 0, 32, 16))  # pure green on the right half
    decoded = decode_bytes(_save(src, "JPEG", quality=95))
    assert decoded.source_mode == "CMYK"
    assert decoded.image.mode == "RGB"
    assert _close(_px(decoded.image, (4, 8)), RED, tol=10)
    assert _close(_px(decoded.image, (28, 8)), GREEN, tol=10)


def test_greyscale_jpeg_becomes_rgb() -> None:
    decoded = decode_bytes(_save(Image.new("L", (20, 20), 90), "JPEG"))
    assert decoded.source_mode == "L"
    assert _close(_px(decoded.image, (10, 10)), (90, 90, 90), tol=2)


def test_palette_png_with_transparency_is_composited_on_white() -> None:
    src = Image.new("P", (20, 10), 0)
    src.putpalette([*RED, *BLUE] + [0] * (3 * 254))
    src.paste(1, (10, 0, 20, 10))
    decoded = decode_bytes(_save(src, "PNG", transparency=0))  # index 0 (red) is transparent
    assert decoded.source_mode == "P"
    assert _px(decoded.image, (2, 5)) == WHITE
    assert _px(decoded.image, (15, 5)) == BLUE


def test_rgba_png_transparency_becomes_white() -> None:
    src = Image.new("RGBA", (30, 10), (255, 0, 0, 0))
    src.paste((255, 0, 0, 255), (10, 0, 20, 10))
    src.paste((0, 0, 0, 128), (20, 0, 30, 10))
    decoded = decode_bytes(_save(src, "PNG"))
    assert decoded.source_mode == "RGBA"
    assert _px(decoded.image, (5, 5)) == WHITE  # transparent red shows the white background
    assert _px(decoded.image, (15, 5)) == RED
    assert _close(_px(decoded.image, (25, 5)), (127, 127, 127), tol=1)  # half-black on white


def test_la_png_becomes_rgb_on_white() -> None:
    src = Image.new("LA", (10, 10), (0, 0))
    src.paste((50, 255), (5, 0, 10, 10))
    decoded = decode_bytes(_save(src, "PNG"))
    assert _px(decoded.image, (2, 2)) == WHITE
    assert _px(decoded.image, (7, 2)) == (50, 50, 50)


def test_16_bit_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    decoded = decode_bytes(_save(Image.fromarray(values), "PNG"))
    assert decoded.source_mode.startswith("I;16")
    got = [_px(decoded.image, (x, 0)) for x in range(4)]
    assert got == [(0, 0, 0), (1, 1, 1), (128, 128, 128), (255, 255, 255)]


def test_exif_orientation_6_is_applied() -> None:
    stored = Image.new("RGB", (40, 20), BLUE)
    stored.paste(RED, (0, 0, 10, 10))  # top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    decoded = decode_bytes(_save(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert (decoded.source_width, decoded.source_height) == (40, 20)
    assert decoded.image.size == (20, 40)
    assert _close(_px(decoded.image, (16, 3)), RED, tol=10)  # now the top-right corner
    assert _close(_px(decoded.image, (3, 3)), BLUE, tol=10)
    assert _close(_px(decoded.image, (16, 36)), BLUE, tol=10)


def test_animated_webp_gives_the_first_frame() -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in (RED, BLUE, GREEN)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=50)
    decoded = decode_bytes(out.getvalue())
    assert decoded.source_format == "WEBP"
    assert decoded.image.size == (20, 10)
    assert _px(decoded.image, (5, 5)) == RED


def test_decoded_image_is_detached_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(_save(Image.new("RGB", (8, 8), GREEN), "PNG"))
    decoded = decode_file(path)
    path.unlink()
    assert _px(decoded.image.resize((4, 4)), (1, 1)) == GREEN


# --- errors and limits -------------------------------------------------------------------------


def test_image_error_statuses_and_pickling() -> None:
    assert STATUS_BY_REASON == {
        "empty": 400,
        "too_many_bytes": 413,
        "too_many_pixels": 413,
        "unsupported_format": 415,
        "not_an_image": 415,
        "truncated": 422,
        "decode_error": 422,
    }
    unknown_reason: Any = "nope"
    err = ImageError("truncated", "the file is cut short")
    assert isinstance(err, ValueError)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.reason, clone.status, str(clone)) == ("truncated", 422, "the file is cut short")
    with pytest.raises(ValueError, match="unknown"):
        ImageError(unknown_reason, "x")


def test_decode_limits_validation() -> None:
    assert DecodeLimits().formats == DEFAULT_FORMATS == ("JPEG", "PNG", "WEBP")
    assert DecodeLimits(formats=("jpeg", "png")).formats == ("JPEG", "PNG")
    with pytest.raises(ValueError, match="XYZ"):
        DecodeLimits(formats=("JPEG", "XYZ"))
    with pytest.raises(ValueError):
        DecodeLimits(formats=())
    with pytest.raises(ValueError):
        DecodeLimits(max_bytes=0)
    not_an_int: Any = 1.5
    with pytest.raises(TypeError):
        DecodeLimits(max_pixels=not_an_int)


# --- to_rgb ------------------------------------------------------------------------------------


def test_to_rgb_wide_greyscale_modes() -> None:
    as_i = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32), "I")
    assert [_px(to_rgb(as_i), (x, 0))[0] for x in range(3)] == [0, 128, 255]
    as_f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")
    assert [_px(to_rgb(as_f), (x, 0))[0] for x in range(3)] == [0, 128, 255]
    wide_f = Image.fromarray(np.array([[-10.0, 0.0, 10.0]], dtype=np.float32), "F")
    assert [_px(to_rgb(wide_f), (x, 0))[0] for x in range(3)] == [0, 128, 255]
    raw = np.array([[0, 32768, 65535]], dtype=">u2").tobytes()
    big_endian = Image.frombytes("I;16B", (3, 1), raw)
    assert [_px(to_rgb(big_endian), (x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_to_rgb_other_modes() -> None:
    assert to_rgb(Image.new("1", (2, 2), 1)).getpixel((0, 0)) == WHITE
    assert to_rgb(Image.new("La", (2, 2), (100, 0))).getpixel((0, 0)) == WHITE
    keyed = Image.new("RGB", (2, 1), RED)
    keyed.putpixel((1, 0), BLUE)
    keyed.info["transparency"] = RED
    out = to_rgb(keyed)
    assert out.mode == "RGB"
    assert (out.getpixel((0, 0)), out.getpixel((1, 0))) == (WHITE, BLUE)


# --- decoding at the model's scale (min_side) ----------------------------------------------


def _model_input(img: Image.Image) -> np.ndarray:
    return np.asarray(fit_square(img, 64), dtype=np.float64)


def test_jpeg_is_decoded_at_a_reduced_scale_that_keeps_min_side() -> None:
    data = _save(_painting(1, 2000).resize((2000, 1500)), "JPEG", quality=90)
    full = decode_bytes(data).image
    with images.open_bytes(data, min_side=128) as pending:
        # 1500 // 128 = 11: the largest DCT scale that keeps both sides >= 128 is 1/8.
        assert pending.pixels == 250 * 188
        small = pending.decode().image
    assert small.size == (250, 188) and small.mode == "RGB"
    # What the model sees differs from a full decode by no more than JPEG noise.
    assert np.abs(_model_input(small) - _model_input(full)).mean() < 2.0


def test_small_jpeg_is_not_reduced_below_min_side() -> None:
    data = _save(_painting(2, 200), "JPEG", quality=90)
    with images.open_bytes(data, min_side=128) as pending:
        assert pending.pixels == 200 * 200  # 200 // 128 = 1: no scaling
    assert decode_bytes(data, min_side=128).image.tobytes() == decode_bytes(data).image.tobytes()


def test_png_is_reduced_before_colour_conversion_like_compositing_first() -> None:
    rgba = _painting(3, 1200).convert("RGBA")
    alpha = Image.linear_gradient("L").resize(rgba.size)
    rgba.putalpha(alpha)
    data = _save(rgba, "PNG")
    with images.open_bytes(data, min_side=100) as pending:
        assert pending.pixels == 1200 * 1200  # PNG has no scaled decoding
        small = pending.decode().image
    assert small.size == (100, 100) and small.mode == "RGB"  # 1200 // 100 = 12
    full = decode_bytes(data).image  # composited on white at full size
    reference = full.reduce(12)
    diff = np.abs(np.asarray(small, np.float64) - np.asarray(reference, np.float64))
    assert diff.max() <= 2  # averaging premultiplied == compositing first (up to rounding)


def test_palette_png_is_reduced_after_conversion() -> None:
    data = _save(_painting(4, 600).convert("P"), "PNG")
    small = decode_bytes(data, min_side=100).image
    assert small.size == (100, 100) and small.mode == "RGB"


def test_reduced_decode_keeps_the_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    wide = Image.new("RGB", (800, 400), RED)
    wide.paste(BLUE, (0, 0, 400, 400))  # left half blue: after rotating, the top half
    for fmt in ("JPEG", "PNG"):
        data = _save(wide, fmt, exif=exif.tobytes())
        out = decode_bytes(data, min_side=100).image
        assert out.size[1] > out.size[0], fmt  # portrait once rotated
        assert _close(_px(out, (out.size[0] // 2, out.size[1] // 4)), BLUE, tol=12), fmt
        assert _close(_px(out, (out.size[0] // 2, 3 * out.size[1] // 4)), RED, tol=12), fmt


def test_reduced_decode_still_refuses_bad_input() -> None:
    assert _reject(_png_declaring(20_000, 20_000)).reason == "too_many_pixels"
    jpeg = _save(_noise((400, 300)), "JPEG")
    with pytest.raises(ImageError) as info:
        decode_bytes(jpeg[: len(jpeg) // 2], min_side=64)
    assert info.value.reason == "truncated"
    with pytest.raises(ValueError):
        images.open_bytes(jpeg, min_side=0)


def test_a_pending_decode_decodes_once() -> None:
    pending = images.open_bytes(_save(_noise((40, 30)), "PNG"))
    assert pending.decode().image.size == (40, 30)
    with pytest.raises(RuntimeError):
        pending.decode()


# --- transforms --------------------------------------------------------------------------------


def test_fit_square_crops_the_centre() -> None:
    wide = Image.new("RGB", (300, 100), RED)
    wide.paste(GREEN, (100, 0, 200, 100))
    wide.paste(BLUE, (200, 0, 300, 100))
    out = fit_square(wide, 50)
    assert out.size == (50, 50)
    assert all(_px(out, (x, y)) == GREEN for x in (0, 25, 49) for y in (0, 49))
    tall = wide.rotate(90, expand=True)
    assert tall.size == (100, 300)
    out = fit_square(tall, 64)  # upscaling to the model input is allowed
    assert out.size == (64, 64)
    assert all(_px(out, (x, y)) == GREEN for x in (0, 63) for y in (0, 63))


def test_fit_square_odd_margin_and_identity_size() -> None:
    img = Image.new("RGB", (5, 3), RED)
    img.paste(GREEN, (1, 0, 4, 3))  # centre crop of 5x3 is columns 1..3
    out = fit_square(img, 3)
    assert out.size == (3, 3)
    assert {_px(out, (x, y)) for x in range(3) for y in range(3)} == {GREEN}


def test_resize_max_side_downscales_only() -> None:
    out = resize_max_side(Image.new("RGB", (400, 200), RED), 100)
    assert out.size == (100, 50)
    assert _px(out, (50, 25)) == RED
    assert resize_max_side(Image.new("RGB", (200, 400)), 100).size == (50, 100)
    small = Image.new("RGB", (50, 30), BLUE)
    kept = resize_max_side(small, 100)
    assert kept.size == (50, 30)
    assert kept is not small
    assert kept.tobytes() == small.tobytes()
    assert resize_max_side(Image.new("RGB", (1000, 3)), 10).size == (10, 1)
    with pytest.raises(ValueError):
        resize_max_side(small, 0)


def test_encode_jpeg_is_deterministic_and_metadata_free() -> None:
    src = decode_bytes(_save(_painting(1), "PNG")).image
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    src.info.update(exif=exif.tobytes(), icc_profile=b"\0" * 200, comment=b"secret comment")
    first, second = encode_jpeg(src), encode_jpeg(src.copy())
    assert first == second
    assert b"Exif" not in first
    assert b"ICC_PROFILE" not in first
    assert b"secret comment" not in first
    back = Image.open(io.BytesIO(first))
    assert back.format == "JPEG"
    assert back.mode == "RGB"
    assert "exif" not in back.info
    assert "icc_profile" not in back.info
    assert JpegImagePlugin.get_sampling(back) == 2  # 4:2:0
    assert encode_jpeg(src, quality=50) != first
    assert src.info["comment"] == b"secret comment"  # the caller's image is untouched


def test_encode_jpeg_converts_other_modes() -> None:
    back = Image.open(io.BytesIO(encode_jpeg(Image.new("RGBA", (8, 8), (0, 0, 0, 0)))))
    assert back.mode == "RGB"
    assert _close(_px(back, (4, 4)), WHITE, tol=2)
    with pytest.raises(ValueError):
        encode_jpeg(Image.new("RGB", (8, 8)), quality=0)


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# --- perceptual hash ---------------------------------------------------------------------------


def test_phash_format_and_stability() -> None:
    img = _painting(1)
    h = phash(img)
    assert len(h) == 16
    assert h == h.lower()
    int(h, 16)
    assert phash(img.copy()) == h
    assert phash(Image.new("RGB", (64, 64), (80, 80, 80))) == phash(Image.new("L", (9, 9), 200))


def test_phash_near_duplicate_is_close_and_unrelated_is_far() -> None:
    original = _painting(1, size=256)
    copy = Image.open(io.BytesIO(_save(original.resize((150, 150)), "JPEG", quality=70)))
    assert hamming(phash(original), phash(copy)) <= 6
    for seed in (2, 3, 4):
        assert hamming(phash(original), phash(_painting(seed, size=256))) > 16


def test_hamming() -> None:
    a, b = "0" * 16, "f" * 16
    assert hamming(a, b) == hamming(b, a) == 64
    assert hamming(a, a) == 0
    assert hamming("8000000000000001", "0000000000000000") == 2
    assert hamming("ABCDEF0123456789", "abcdef0123456789") == 0
    for bad in ("123", "g" * 16, "0" * 17):
        with pytest.raises(ValueError):
            hamming(bad, a)


_hash_lists = st.lists(st.integers(0, 2**64 - 1).map(lambda v: f"{v:016x}"), max_size=40)


@settings(max_examples=60, deadline=None)
@given(hashes=_hash_lists, block_rows=st.integers(1, 7))
def test_matrix_distances_equal_pairwise_hamming(hashes: list[str], block_rows: int) -> None:
    matrix = phash_matrix_distances(hashes, block_rows=block_rows)
    n = len(hashes)
    assert matrix.shape == (n, n)
    assert matrix.dtype == np.uint8
    expected = [[hamming(a, b) for b in hashes] for a in hashes]
    assert matrix.tolist() == (expected if n else [])


def test_matrix_distances_popcount_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    hashes = [f"{int(v):016x}" for v in rng.integers(0, 2**63, 50, dtype=np.uint64) * 2 + 1]
    fast = phash_matrix_distances(hashes, block_rows=16)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    slow = phash_matrix_distances(hashes, block_rows=16)
    assert np.array_equal(fast, slow)
    assert slow[0, 1] == hamming(hashes[0], hashes[1])
    with pytest.raises(ValueError):
        phash_matrix_distances(["0" * 16, "xyz"])


def test_matrix_distances_at_dataset_scale() -> None:
    rng = np.random.default_rng(5)
    hashes = [f"{int(v):016x}" for v in rng.integers(0, 2**64, 9000, dtype=np.uint64)]
    matrix = phash_matrix_distances(hashes)
    assert matrix.shape == (9000, 9000)
    assert not matrix.diagonal().any()
    for i, j in ((0, 8999), (4500, 17), (8999, 0)):
        assert matrix[i, j] == hamming(hashes[i], hashes[j])
    assert np.array_equal(matrix[:200, :200], matrix[:200, :200].T)


def test_module_logger_name() -> None:
    assert images.logger.name == "artist_id.images"
