"""`read_image`: every file ends as the right RGB uint8 pixels, or is refused by name."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tailseg.data import DataError
from tailseg.data.dataset import read_image


def pixels(path: Path) -> np.ndarray:
    image = read_image(path)
    assert image.dtype.is_floating_point is False and image.shape[0] == 3
    return image.permute(1, 2, 0).numpy()  # (H, W, 3)


def write_png16(path: Path, values: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG by hand (PIL writes 16 bits only for grayscale): values (H, W, channels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    h, w = values.shape[:2]
    raw = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_16_bit_grayscale_png_is_scaled_to_8_bit_not_white(tmp_path: Path) -> None:
    gray = np.array([[0, 257 * 10, 65535], [32896, 1000, 257 * 200]], dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode == "I;16"
    out = pixels(tmp_path / "g.png")
    assert out[..., 0].tolist() == [[0, 10, 255], [128, 4, 200]]
    assert (out == out[..., :1]).all()  # gray in all three channels


def test_16_bit_colour_pngs_keep_their_colours(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 257 * 100, 257 * 7
    write_png16(tmp_path / "rgb.png", rgb, color_type=2)
    assert pixels(tmp_path / "rgb.png")[0, 0].tolist() == [255, 100, 7]
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 65535, dtype=np.uint16)], axis=2)
    write_png16(tmp_path / "rgba.png", rgba, color_type=6)
    assert pixels(tmp_path / "rgba.png")[1, 2].tolist() == [255, 100, 7]


@pytest.mark.parametrize("mode", ["I", "F"])
def test_32_bit_pixels_are_refused_by_name(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"{mode}.tif"
    Image.fromarray(np.full((2, 3), 70000, dtype=np.int32 if mode == "I" else np.float32)).save(
        path
    )
    assert Image.open(path).mode == mode
    with pytest.raises(DataError, match=rf"{mode}\.tif: cannot read image .*mode '{mode}'"):
        read_image(path)


def test_other_modes_end_as_the_rgb_they_show(tmp_path: Path) -> None:
    red, blue = (255, 0, 0), (0, 0, 255)
    pal = Image.new("P", (2, 1))
    pal.putpalette([*red, *blue] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    la = Image.fromarray(np.array([[[90, 0], [200, 255]]], dtype=np.uint8), mode="LA")
    la.save(tmp_path / "la.png")
    rgba = np.array([[[*red, 0], [*blue, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "one.png")
    cmyk = np.array([[[0, 255, 255, 0], [0, 0, 0, 255]]], dtype=np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "cmyk.tif")
    assert Image.open(tmp_path / "one.png").mode == "1"
    assert pixels(tmp_path / "p.png").tolist() == [[list(red), list(blue)]]
    assert pixels(tmp_path / "la.png").tolist() == [[[90] * 3, [200] * 3]]
    assert pixels(tmp_path / "rgba.png").tolist() == [[list(red), list(blue)]]  # alpha dropped
    assert pixels(tmp_path / "one.png").tolist() == [[[255] * 3, [0] * 3]]
    assert pixels(tmp_path / "cmyk.tif").tolist() == [[list(red), [0, 0, 0]]]
