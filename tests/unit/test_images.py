"""Tests for svd_demo.files.images: every test image is made here, in tmp_path or memory (no binary fixtures)."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svd_demo.core.errors import InputError
from svd_demo.files.images import (
    ASPECT_MODES,
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    PreparedImage,
    load_image,
    output_size,
    prepare_image,
    read_image_header,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _png_bytes(im: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kwargs)
    return buf.getvalue()


def _raw_png(width: int, height: int, color_type: int, bit_depth: int, rows: bytes) -> bytes:
    """A PNG written by hand, for bit depths Pillow cannot save (48-bit RGB)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _with_header_size(png: bytes, width: int, height: int) -> bytes:
    """Patch a PNG's IHDR to claim another size (with a valid CRC), keeping its tiny pixel data."""
    ihdr = bytearray(png[8:33])  # length(4) + "IHDR"(4) + data(13) + crc(4)
    ihdr[8:16] = struct.pack(">II", width, height)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
    return png[:8] + bytes(ihdr) + png[33:]


def _close(pixel: tuple[int, ...], expected: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, expected, strict=True))


def _assert_rgb(loaded: LoadedImage) -> None:
    assert isinstance(loaded, LoadedImage)
    assert loaded.image.mode == "RGB"
    assert loaded.original_size == loaded.image.size


# ---------------------------------------------------------------------------------------------------------------
# load_image: orientation, colour modes, transparency, depth


def test_exif_orientation_6_comes_out_portrait_with_corner_rotated(tmp_path: Path) -> None:
    stored = Image.new("RGB", (64, 32), BLUE)
    stored.paste(RED, (0, 0, 16, 16))  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display", what phones write for portrait shots
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())

    loaded = load_image(path)
    _assert_rgb(loaded)
    assert loaded.image.size == (32, 64)
    # Rotating 90 degrees clockwise moves the stored top-left corner to the top-right.
    assert _close(loaded.image.getpixel((28, 4)), RED)
    assert _close(loaded.image.getpixel((4, 4)), BLUE)
    assert _close(loaded.image.getpixel((4, 60)), BLUE)
    assert read_image_header(path) == (32, 64, "JPEG")


def test_transparent_png_becomes_white_not_black(tmp_path: Path) -> None:
    im = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (16, 0, 32, 32))
    path = tmp_path / "alpha.png"
    im.save(path)

    loaded = load_image(path)
    _assert_rgb(loaded)
    assert loaded.image.getpixel((2, 2)) == (255, 255, 255)
    assert loaded.image.getpixel((30, 2)) == RED
    assert any("transparent" in n and "white" in n for n in loaded.notices)

    on_grey = load_image(path, background=(10, 20, 30))
    assert on_grey.image.getpixel((2, 2)) == (10, 20, 30)
    assert load_image(path, background="#000000").image.getpixel((2, 2)) == (0, 0, 0)


def test_half_transparent_pixels_are_blended_onto_background() -> None:
    im = Image.new("RGBA", (16, 16), (0, 0, 0, 128))
    pixel = load_image(im).image.getpixel((0, 0))
    assert _close(pixel, (127, 127, 127), tol=2)


def test_opaque_alpha_channel_gives_no_notice() -> None:
    loaded = load_image(Image.new("RGBA", (16, 16), (1, 2, 3, 255)))
    assert loaded.image.getpixel((0, 0)) == (1, 2, 3)
    assert loaded.notices == ()


def test_la_png(tmp_path: Path) -> None:
    im = Image.new("LA", (32, 32), (0, 0))
    im.paste((200, 255), (16, 0, 32, 32))
    path = tmp_path / "la.png"
    im.save(path)
    loaded = load_image(path)
    _assert_rgb(loaded)
    assert loaded.image.getpixel((2, 2)) == (255, 255, 255)
    assert loaded.image.getpixel((30, 2)) == (200, 200, 200)
    assert loaded.notices


def test_palette_png_with_transparent_index(tmp_path: Path) -> None:
    im = Image.new("P", (32, 32), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    im.paste(1, (16, 0, 32, 32))
    path = tmp_path / "palette.png"
    im.save(path, transparency=0)
    with Image.open(path) as check:
        assert check.mode == "P" and "transparency" in check.info

    loaded = load_image(path)
    _assert_rgb(loaded)
    assert loaded.image.getpixel((2, 2)) == (255, 255, 255)
    assert loaded.image.getpixel((30, 2)) == RED


def test_rgb_png_with_transparency_key(tmp_path: Path) -> None:
    im = Image.new("RGB", (32, 32), (0, 0, 0))
    im.paste(RED, (16, 0, 32, 32))
    path = tmp_path / "key.png"
    im.save(path, transparency=(0, 0, 0))
    loaded = load_image(path)
    assert loaded.image.getpixel((2, 2)) == (255, 255, 255)
    assert loaded.image.getpixel((30, 2)) == RED


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(path, "JPEG", quality=95)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    loaded = load_image(path)
    _assert_rgb(loaded)
    assert _close(loaded.image.getpixel((16, 16)), RED)
    assert any("CMYK" in n for n in loaded.notices)


def test_16_bit_grey_png_mid_grey_stays_mid_grey(tmp_path: Path) -> None:
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((32, 32), 32768, dtype=np.uint16)).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")  # Pillow keeps the 16 bits; a plain convert("RGB") would clip to 255

    loaded = load_image(path)
    _assert_rgb(loaded)
    assert loaded.image.getpixel((0, 0)) in ((127, 127, 127), (128, 128, 128))
    assert any("16 bits" in n for n in loaded.notices)


def test_48_bit_rgb_png() -> None:
    rows = (b"\x00" + b"\x80\x00\x40\x00\xff\xff" * 16) * 16  # 16-bit samples 0x8000, 0x4000, 0xffff
    loaded = load_image(_raw_png(16, 16, 2, 16, rows))
    _assert_rgb(loaded)
    assert loaded.image.getpixel((0, 0)) == (128, 64, 255)
    assert any("16 bits" in n for n in loaded.notices)


def test_64_bit_rgba_png_is_composited() -> None:
    rows = (b"\x00" + b"\xff\xff\x00\x00\x00\x00\x00\x00" * 16) * 16  # red, fully transparent
    loaded = load_image(_raw_png(16, 16, 6, 16, rows))
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)


def test_float_tiff_in_0_1_is_scaled(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    arr = np.full((32, 32), 0.5, dtype=np.float32)
    arr[:, 16:] = 1.0
    Image.fromarray(arr).save(path)
    with Image.open(path) as check:
        assert check.mode == "F"
    loaded = load_image(path)
    _assert_rgb(loaded)
    assert loaded.image.getpixel((0, 0)) == (128, 128, 128)
    assert loaded.image.getpixel((31, 0)) == (255, 255, 255)
    assert any("floating-point" in n for n in loaded.notices)


def test_float_outside_0_1_is_min_max_scaled() -> None:
    arr = np.full((16, 16), -10.0, dtype=np.float32)
    arr[:, 8:] = 1000.0
    loaded = load_image(Image.fromarray(arr))
    assert loaded.image.getpixel((0, 0)) == (0, 0, 0)
    assert loaded.image.getpixel((15, 0)) == (255, 255, 255)


def test_32_bit_int_with_16_bit_values(tmp_path: Path) -> None:
    path = tmp_path / "int.tif"
    Image.fromarray(np.full((16, 16), 32768, dtype=np.int32)).save(path)
    loaded = load_image(path)
    assert loaded.image.getpixel((0, 0)) in ((127, 127, 127), (128, 128, 128))


@pytest.mark.parametrize("mode", ["1", "L", "P", "YCbCr", "LAB", "HSV", "I;16B"])
def test_other_modes_become_rgb(mode: str) -> None:
    loaded = load_image(Image.new(mode, (16, 16)))
    _assert_rgb(loaded)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_image_uses_first_frame(tmp_path: Path, fmt: str) -> None:
    frames = [Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 2

    loaded = load_image(path)
    _assert_rgb(loaded)
    assert _close(loaded.image.getpixel((16, 16)), RED)
    assert "The image is animated; its first frame was used." in loaded.notices


def test_pil_input_on_later_frame_is_left_where_it_was(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with Image.open(path) as im:
        im.seek(1)
        loaded = load_image(im)
        assert im.tell() == 1
    assert _close(loaded.image.getpixel((16, 16)), RED)


# ---------------------------------------------------------------------------------------------------------------
# load_image: sources and refusals


def test_bytes_and_pil_inputs() -> None:
    src = Image.new("RGB", (40, 30), (10, 20, 30))
    from_bytes = load_image(_png_bytes(src))
    _assert_rgb(from_bytes)
    assert from_bytes.image.getpixel((0, 0)) == (10, 20, 30)
    assert from_bytes.notices == ()

    from_pil = load_image(src)
    _assert_rgb(from_pil)
    assert from_pil.image is not src
    from_pil.image.putpixel((0, 0), (0, 0, 0))
    assert src.getpixel((0, 0)) == (10, 20, 30)  # the result is independent of the input

    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    assert load_image(rgba).image.getpixel((0, 0)) == (255, 255, 255)
    assert rgba.mode == "RGBA"


def test_no_file_handle_left_open(tmp_path: Path) -> None:
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc")
    path = tmp_path / "a.png"
    Image.new("RGB", (32, 32)).save(path)
    before = len(os.listdir(fd_dir))
    loaded = load_image(path)
    read_image_header(path)
    assert len(os.listdir(fd_dir)) == before
    loaded.image.load()  # fully loaded: works after the file is gone
    path.unlink()
    assert loaded.image.getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize("source", [None, ""])
def test_no_image(source: object) -> None:
    with pytest.raises(InputError, match="No image was given"):
        load_image(source)  # type: ignore[arg-type]


def test_empty_bytes_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        load_image(b"")
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_image(path)
    with pytest.raises(InputError, match="empty"):
        read_image_header(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)


def test_wrong_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        InputError, match=r"could not be read as an image \(.*\)\. It seems to be cut off \(truncated\)"
    ):
        load_image(path)


def test_text_renamed_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 10)
    with pytest.raises(InputError, match=r"'notes.png' could not be read as an image \(PNG, JPEG"):
        load_image(path)
    with pytest.raises(InputError, match="could not be read as an image"):
        read_image_header(path)


def test_svg_is_named(tmp_path: Path) -> None:
    path = tmp_path / "logo.svg"
    path.write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"></svg>')
    with pytest.raises(InputError, match="SVG"):
        load_image(path)


def test_corrupt_png_crc(tmp_path: Path) -> None:
    data = bytearray(_png_bytes(Image.new("RGB", (32, 32))))
    data[29] ^= 0xFF  # break the IHDR CRC
    with pytest.raises(InputError, match="could not be read as an image"):
        load_image(bytes(data))


def test_header_claiming_20000x20000_is_refused_without_decoding() -> None:
    huge = _with_header_size(_png_bytes(Image.new("RGB", (16, 16))), 20000, 20000)
    # Pillow itself refuses this size at open(); the message must still be ours.
    with pytest.raises(InputError, match=r"400\.0 megapixels\); the limit is 25\.0 megapixels"):
        load_image(huge)


def test_header_over_our_cap_but_under_pillows_uses_our_check() -> None:
    big = _with_header_size(_png_bytes(Image.new("RGB", (16, 16))), 6000, 5000)
    # The pixel data is only 16x16, so had it been decoded the error would be "truncated", not the size.
    with pytest.raises(InputError, match=r"is 6000x5000 \(30\.0 megapixels\); the limit is 25\.0 megapixels"):
        load_image(big)
    assert read_image_header(big) == (6000, 5000, "PNG")
    with pytest.raises(InputError, match=r"limit is 1\.0 megapixels"):
        load_image(_png_bytes(Image.new("RGB", (1200, 1000))), max_pixels=1_000_000)
    assert DEFAULT_MAX_PIXELS >= 6000 * 4000


def test_cap_above_pillows_own_limit_quotes_pillows_limit() -> None:
    huge = _with_header_size(_png_bytes(Image.new("RGB", (16, 16))), 20000, 20000)
    with pytest.raises(InputError, match=r"400\.0 megapixels\); the limit is 179\.0 megapixels"):
        load_image(huge, max_pixels=500_000_000)


def test_pillow_bomb_warning_as_error_becomes_input_error() -> None:
    big = _with_header_size(_png_bytes(Image.new("RGB", (16, 16))), 10000, 10000)  # over Pillow's warning limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="megapixels"):
            load_image(big, max_pixels=150_000_000)


@pytest.mark.parametrize("size", [(1, 1), (15, 100), (100, 15)])
def test_too_small(size: tuple[int, int]) -> None:
    with pytest.raises(InputError, match="at least 16 pixels"):
        load_image(_png_bytes(Image.new("RGB", size)))


def test_read_image_header() -> None:
    assert read_image_header(_png_bytes(Image.new("RGB", (40, 30)))) == (40, 30, "PNG")
    with pytest.raises(InputError, match="No image"):
        read_image_header(None)
    with pytest.raises(InputError, match="could not be read"):
        read_image_header(b"GIF89a-but-not-really")


# ---------------------------------------------------------------------------------------------------------------
# output_size

LANDSCAPE = (6000, 4000)
PORTRAIT = (4000, 6000)
SQUARE = (3000, 3000)

# Computed with the snapping rule (nearest 64 if the aspect bends <= 3%, else nearest 8) and checked by hand.
EXPECTED_SIZES = {
    # resolution: (crop/pad, native landscape 3:2, native portrait 2:3, native square)
    1024: ((1024, 576), (1024, 680), (680, 1024), (1024, 1024)),
    768: ((768, 432), (768, 512), (512, 768), (768, 768)),
    512: ((512, 288), (512, 344), (344, 512), (512, 512)),
    256: ((256, 144), (256, 168), (168, 256), (256, 256)),
}


@pytest.mark.parametrize("resolution", sorted(EXPECTED_SIZES))
def test_output_size_table(resolution: int) -> None:
    sixteen_nine, land, port, square = EXPECTED_SIZES[resolution]
    for photo in (LANDSCAPE, PORTRAIT, SQUARE):
        assert output_size(*photo, resolution, "crop") == sixteen_nine
        assert output_size(*photo, resolution, "pad") == sixteen_nine
    assert output_size(*LANDSCAPE, resolution, "native") == land
    assert output_size(*PORTRAIT, resolution, "native") == port
    assert output_size(*SQUARE, resolution, "native") == square


@pytest.mark.parametrize("resolution", [64, 256, 512, 576, 768, 1000, 1024, 1280, 2048])
@pytest.mark.parametrize("mode", ASPECT_MODES)
@pytest.mark.parametrize("photo", [LANDSCAPE, PORTRAIT, SQUARE, (1920, 1080), (100000, 10), (10, 100000), (17, 16)])
def test_output_size_invariants(resolution: int, mode: str, photo: tuple[int, int]) -> None:
    w, h = output_size(*photo, resolution, mode)
    assert w % 8 == 0 and h % 8 == 0
    assert max(w, h) == resolution
    assert min(w, h) >= 64
    if mode == "native":
        # orientation kept (at 64 px everything is 64x64, the smallest frame)
        assert w >= h if photo[0] >= photo[1] else h >= w
        # The photo's shape, clamped to 3:1, sets the short side: the exact one rounded to 8 px, or to a multiple of
        # 64 where that bends the shape by 3% at most, and never below the 64 px floor.
        shape = min(3.0, max(photo) / min(photo))
        short, exact = min(w, h), max(w, h) / shape
        assert (abs(short - exact) <= 4 or (short % 64 == 0 and abs(max(w, h) / short / shape - 1) <= 0.03)
                or (short == 64 and exact < 64)), (short, exact)
    else:
        assert w >= h


def test_output_size_known_16_9_and_strip() -> None:
    assert output_size(1920, 1080, 1024, "native") == (1024, 576)
    assert output_size(100000, 10, 1024, "native") == (1024, 344)  # 3:1 (1024/3 = 341.3 -> 344)
    assert output_size(10, 100000, 1024, "native") == (344, 1024)
    assert output_size(100000, 10, 1024, "crop") == (1024, 576)


@pytest.mark.parametrize("resolution", [1001, 1020.5, 32, 56, 4096, 2056, "1024", None, True])
def test_output_size_bad_resolution(resolution: object) -> None:
    with pytest.raises(InputError, match="resolution"):
        output_size(100, 100, resolution, "crop")  # type: ignore[arg-type]


def test_output_size_accepts_integral_float_from_slider() -> None:
    assert output_size(100, 100, 1024.0, "crop") == (1024, 576)  # type: ignore[arg-type]


def test_output_size_bad_mode_and_size() -> None:
    with pytest.raises(InputError, match="aspect mode 'stretch'.*crop, pad, native"):
        output_size(100, 100, 1024, "stretch")
    with pytest.raises(InputError, match="at least 1 pixel"):
        output_size(0, 100, 1024, "crop")


# ---------------------------------------------------------------------------------------------------------------
# prepare_image


@pytest.mark.parametrize("mode", ASPECT_MODES)
@pytest.mark.parametrize("resolution", [1024, 512])
@pytest.mark.parametrize("size", [(600, 400), (400, 600), (300, 300), (1920, 1080), (1024, 576), (2000, 20)])
def test_prepare_size_matches_output_size(mode: str, resolution: int, size: tuple[int, int]) -> None:
    prepared = prepare_image(Image.new("RGB", size, (50, 60, 70)), resolution, mode)
    assert isinstance(prepared, PreparedImage)
    assert prepared.image.mode == "RGB"
    assert prepared.image.size == output_size(*size, resolution, mode)


def test_prepare_crop_notice_for_dslr_photo() -> None:
    prepared = prepare_image(Image.new("RGB", (6000, 4000)), 1024, "crop")
    assert prepared.image.size == (1024, 576)
    assert prepared.notices == ("Cropped to 16:9 (1024x576): 16% of the height was cut.",)


def test_prepare_crop_keeps_the_centre() -> None:
    im = Image.new("RGB", (1000, 1000), BLUE)
    im.paste(RED, (0, 0, 1000, 200))  # top band is cut away by a 16:9 centre crop (keeps 219..781)
    out = prepare_image(im, 512, "crop").image
    assert _close(out.getpixel((256, 2)), BLUE)


def test_prepare_exact_size_has_no_notice_and_returns_a_copy() -> None:
    im = Image.new("RGB", (1024, 576), (1, 2, 3))
    prepared = prepare_image(im, 1024, "crop")
    assert prepared.notices == ()
    assert prepared.image is not im
    assert prepared.image.getpixel((0, 0)) == (1, 2, 3)


def test_prepare_native_resize_notice() -> None:
    prepared = prepare_image(Image.new("RGB", (1080, 1920)), 1024, "native")
    assert prepared.image.size == (576, 1024)
    assert prepared.notices == ("Resized to 576x1024.",)


def test_strip_native_is_3_to_1_with_crop_notice_and_crop_mode_is_16_9() -> None:
    strip = Image.new("RGB", (100000, 10), (90, 90, 90))
    native = prepare_image(strip, 1024, "native")
    assert native.image.size == (1024, 344)
    assert len(native.notices) == 1 and native.notices[0].startswith("Cropped to 3:1 (1024x344)")
    assert "of the width was cut" in native.notices[0]
    cropped = prepare_image(strip, 1024, "crop")
    assert cropped.image.size == (1024, 576)
    assert cropped.notices[0].startswith("Cropped to 16:9 (1024x576)")


def test_pad_portrait_has_bars_left_and_right() -> None:
    pad = (10, 200, 30)
    prepared = prepare_image(Image.new("RGB", (400, 600), RED), 1024, "pad", pad_color=pad)
    out = prepared.image
    assert out.size == (1024, 576)
    assert out.getpixel((0, 288)) == pad and out.getpixel((1023, 288)) == pad
    assert out.getpixel((0, 0)) == pad and out.getpixel((1023, 575)) == pad
    assert _close(out.getpixel((512, 0)), RED) and _close(out.getpixel((512, 575)), RED)
    assert prepared.notices == ("Padded to 16:9 (1024x576) with bars on the left and right.",)


def test_pad_wide_image_has_bars_top_and_bottom() -> None:
    out = prepare_image(Image.new("RGB", (800, 100), RED), 512, "pad", pad_color="#0000ff").image
    assert out.size == (512, 288)
    assert out.getpixel((256, 0)) == BLUE and out.getpixel((256, 287)) == BLUE
    assert _close(out.getpixel((0, 144)), RED) and _close(out.getpixel((511, 144)), RED)


def test_pad_default_colour_is_black() -> None:
    out = prepare_image(Image.new("RGB", (300, 300), RED), 256, "pad").image
    assert out.getpixel((0, 72)) == (0, 0, 0)


def test_prepare_non_rgb_input_is_converted_with_notice() -> None:
    prepared = prepare_image(Image.new("RGBA", (320, 180), (0, 0, 0, 0)), 256, "crop")
    assert prepared.image.mode == "RGB"
    assert prepared.image.getpixel((10, 10)) == (255, 255, 255)
    assert any("transparent" in n for n in prepared.notices)


def test_prepare_bad_arguments() -> None:
    im = Image.new("RGB", (64, 64))
    with pytest.raises(InputError, match="aspect mode"):
        prepare_image(im, 1024, "zoom")
    with pytest.raises(InputError, match="resolution"):
        prepare_image(im, 1000 + 4, "crop")
    with pytest.raises(InputError, match="colour"):
        prepare_image(im, 1024, "pad", pad_color=(300, 0, 0))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="colour"):
        prepare_image(im, 1024, "pad", pad_color="not-a-colour")
    with pytest.raises(TypeError):
        prepare_image(np.zeros((8, 8, 3)), 1024, "crop")  # type: ignore[arg-type]


def test_large_jpeg_decodes_at_reduced_scale_but_never_below_min_side(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4096, 3072), (10, 120, 200)).save(path, quality=90)
    loaded = load_image(path, min_side=1024)
    assert loaded.image.size == (2048, 1536)  # 1/2 scale: 1/4 would give a 768 px short side, below 1024
    assert loaded.original_size == (4096, 3072)
    assert load_image(path).image.size == (4096, 3072)
    assert prepare_image(loaded.image, 1024, "crop").image.size == (1024, 576)
