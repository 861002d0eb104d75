from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digihuman.errors import CharacterError
from digihuman.face.portrait import BACKGROUND_RGB, MAX_SIDE, load_portrait, save_portrait


def gradient(height: int = 120, width: int = 90) -> np.ndarray:
    """A test picture whose every corner differs, so rotations and flips are detectable."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1).astype(
        np.uint8
    )


@pytest.mark.parametrize(("suffix", "tolerance"), [(".png", 0), (".jpg", 12), (".webp", 12)])
def test_common_formats_load_as_rgb8(tmp_path: Path, suffix: str, tolerance: int) -> None:
    picture = gradient()
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(picture).save(path, quality=95)
    loaded = load_portrait(path)
    assert loaded.dtype == np.uint8 and loaded.shape == picture.shape
    assert np.abs(loaded.astype(int) - picture).mean() <= tolerance


def test_transparency_is_composited_on_a_neutral_background(tmp_path: Path) -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (255, 0, 0, 255)  # opaque red on the left, fully transparent on the right
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    loaded = load_portrait(tmp_path / "cutout.png")
    assert loaded.shape == (40, 40, 3)
    assert tuple(loaded[10, 5]) == (255, 0, 0)
    assert tuple(loaded[10, 35]) == BACKGROUND_RGB


def test_grayscale_and_16_bit(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    loaded = load_portrait(tmp_path / "gray.png")
    assert loaded.shape == (10, 64, 3)
    assert np.array_equal(loaded[..., 0], gray) and np.array_equal(loaded[..., 2], gray)

    deep = (gray.astype(np.uint16) * 257).astype(np.uint16)  # the same ramp in 16 bits
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    loaded16 = load_portrait(tmp_path / "deep.png")
    assert np.abs(loaded16[..., 1].astype(int) - gray).max() <= 1


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    picture = gradient(60, 100)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(picture).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    loaded = load_portrait(tmp_path / "phone.jpg")
    assert loaded.shape == (100, 60, 3)
    expected = np.rot90(picture, k=-1)
    assert np.abs(loaded.astype(int) - expected).mean() < 6


def test_huge_photo_is_downscaled(tmp_path: Path) -> None:
    picture = np.zeros((3000, 5000, 3), np.uint8)
    picture[:, 2500:] = 200
    Image.fromarray(picture).save(tmp_path / "huge.jpg", quality=80)
    loaded = load_portrait(tmp_path / "huge.jpg")
    assert max(loaded.shape[:2]) == MAX_SIDE
    assert loaded.shape[1] / loaded.shape[0] == pytest.approx(5000 / 3000, rel=0.01)


def test_missing_corrupt_and_non_images_are_refused_in_one_line(tmp_path: Path) -> None:
    Image.fromarray(gradient()).save(tmp_path / "good.jpg")
    data = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "notes.png").write_text("this is not a picture\n")
    cases = {
        tmp_path / "absent.png": "does not exist",
        tmp_path: "not a file",
        tmp_path / "truncated.jpg": "corrupt",
        tmp_path / "notes.png": "not an image",
    }
    for path, expected in cases.items():
        with pytest.raises(CharacterError) as caught:
            load_portrait(path)
        message = str(caught.value)
        assert expected in message and "\n" not in message


def test_save_round_trip(tmp_path: Path) -> None:
    picture = gradient()
    save_portrait(picture, tmp_path / "deep" / "er" / "portrait.png")
    assert np.array_equal(load_portrait(tmp_path / "deep" / "er" / "portrait.png"), picture)


def fake_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims `width` x `height`: decoding it would allocate gigabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    idat = zlib.compress(b"\0" * 1024)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def test_a_huge_image_is_refused_from_its_header_before_decoding(tmp_path: Path) -> None:
    import resource

    path = tmp_path / "huge.png"
    fake_png(path, 13000, 13000)  # 169 MP: above the limit, below Pillow's own bomb error
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CharacterError, match="below 100 MP"):
        load_portrait(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200  # nothing was decoded (it would be 676 MB as RGBA)
