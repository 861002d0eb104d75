"""Reading a portrait photo into one predictable form: RGB uint8, upright, at most 2048 px on its long side.

Photos arrive in every shape: phone JPEGs rotated by an EXIF tag, PNGs with transparency, 16-bit scans,
grayscale, 40-megapixel originals. Everything downstream (landmarks, rig) sees the same kind of array.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digihuman.errors import CharacterError

logger = logging.getLogger(__name__)

MAX_SIDE = 2048
MAX_PIXELS = 100_000_000  # decoded as RGBA that is 400 MB; a portrait never needs more
# Transparent areas become a soft neutral grey: dark enough that a white shirt stays visible,
# light enough not to read as a hole.
BACKGROUND_RGB = (200, 200, 200)
SUPPORTED = "a JPEG, PNG or WebP photo"


def load_portrait(path: Path) -> np.ndarray:
    """The photo at `path` as an (H, W, 3) RGB uint8 array; CharacterError when it cannot be used."""
    path = Path(path)
    if not path.exists():
        raise CharacterError(f"portrait {path} does not exist; pass the path of {SUPPORTED}")
    if not path.is_file():
        raise CharacterError(f"portrait {path} is not a file; pass the path of {SUPPORTED}")
    try:
        with warnings.catch_warnings():
            # A huge photo is fine: we downscale it right away.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                # JPEG can decode straight at a reduced scale, which keeps huge photos cheap.
                opened.draft("RGB", (MAX_SIDE, MAX_SIDE))
                # Opening reads only the header: refuse what would still be huge before decoding it.
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise Image.DecompressionBombError(f"{width}x{height}")
                upright = ImageOps.exif_transpose(opened)
                upright.load()
    except UnidentifiedImageError:
        raise CharacterError(f"portrait {path} is not an image; use {SUPPORTED}") from None
    except Image.DecompressionBombError:
        raise CharacterError(
            f"portrait {path} is too large to decode safely; resize it below {MAX_PIXELS // 1_000_000} MP"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CharacterError(f"portrait {path} is corrupt or truncated ({exc}); use another photo") from None

    image = _to_rgb8(upright)
    height, width = image.shape[:2]
    if max(height, width) > MAX_SIDE:
        scale = MAX_SIDE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))
        logger.debug("downscaled portrait %s from %dx%d to %dx%d", path, width, height, *size)
    return np.ascontiguousarray(image)


def save_portrait(image: np.ndarray, path: Path) -> None:
    """Write an RGB uint8 array as a lossless PNG (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(path, format="PNG")


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode as RGB uint8; transparency is composited over BACKGROUND_RGB."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit (and 32-bit) grayscale: Pillow's own conversion clips instead of scaling.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        gray = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (*BACKGROUND_RGB, 255))
        image = Image.alpha_composite(background, image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)
