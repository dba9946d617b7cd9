"""Image decoding shared by the image loaders: one file (or zip member) -> uint8 [C, S, S].

Every failure is one ``FileNotFoundError`` or ``ValueError`` whose message starts
with the path of the offending file (``archive.zip:member`` for zip members); an image
over a pixel limit is the ``ValueError`` subclass ``ImageTooLarge``.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
RESAMPLE = Image.Resampling.LANCZOS
RESAMPLE_NAME = "lanczos"

# What PIL raises for unreadable or truncated image data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


class ImageTooLarge(ValueError):
    """An image with more pixels than a limit allows; the message names the file, its size and the limit."""


def is_image_name(name: str) -> bool:
    """Whether a file name has one of the ``IMAGE_EXTENSIONS`` (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_hidden(name: str) -> bool:
    """Dot files (``.DS_Store``, editor swap files) and macOS zip metadata, skipped by loaders."""
    return os.path.basename(name.rstrip("/")).startswith(".") or name.startswith("__MACOSX/")


def check_options(image_size: int, channels: int) -> None:
    """A clear error for an image size or channel count no loader can produce."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


def preprocessing(image_size: int, channels: int, inverted: bool) -> dict:
    """The record of what was done to the pixels, kept on every loaded dataset."""
    return {
        "image_size": image_size,
        "channels": channels,
        "inverted": inverted,
        "resample": RESAMPLE_NAME,
        "normalisation": "none",
        "range": [0.0, 1.0],
    }


def decode_image(
    data: bytes,
    name: str,
    *,
    channels: int = 1,
    size: int | None = None,
    invert: bool = False,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode encoded image bytes; ``name`` is the path quoted in errors.

    Converts to grayscale (``channels=1``) or RGB (``3``), compositing any transparency
    onto white, resizes to ``size x size`` (aspect ratio not kept) with Lanczos
    filtering, and optionally inverts (``255 - x``).  Returns uint8 [C, size, size].
    An image over ``max_pixels`` (else over Pillow's decompression-bomb guard) is
    ``ImageTooLarge``, refused from its header before any pixel is decoded.
    """
    try:
        with _open(data, name, max_pixels) as img:
            img.load()
            img = _to_mode(img, channels)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), RESAMPLE)
            array = np.array(img, dtype=np.uint8)  # [H, W] or [H, W, 3], a writable copy
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError:  # over twice Image.MAX_IMAGE_PIXELS, where Pillow gives no size
        limit = "Pillow's decompression-bomb limit" if max_pixels is None else f"the limit of {max_pixels}"
        guard = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageTooLarge(f"{name}: more than {guard} pixels, over {limit}") from None
    except UnidentifiedImageError:  # its message quotes a BytesIO repr, not the file
        raise ValueError(f"{name}: not a readable image (not a format Pillow recognises)") from None
    except _DECODE_ERRORS as err:
        raise ValueError(f"{name}: not a readable image ({type(err).__name__}: {err})") from err
    array = array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))  # [C, H, W]
    return np.subtract(255, array, out=array) if invert else array


def read_image(path: str | Path, **options) -> np.ndarray:
    """Decode the image file at ``path`` (see ``decode_image`` for ``options``)."""
    path = Path(path)
    if not is_image_name(path.name):
        raise ValueError(f"{path}: not an image file (expected one of {', '.join(sorted(IMAGE_EXTENSIONS))})")
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: image file not found") from err
    except IsADirectoryError as err:
        raise ValueError(f"{path}: a folder where an image file was expected") from err
    return decode_image(data, str(path), **options)


def read_zip_image(archive: zipfile.ZipFile, member: str, **options) -> np.ndarray:
    """Decode ``member`` of an open zip archive (see ``decode_image`` for ``options``)."""
    name = f"{archive.filename}:{member}"
    try:
        data = archive.read(member)
    except KeyError as err:
        raise FileNotFoundError(f"{name}: no such member in the archive") from err
    except (zipfile.BadZipFile, OSError, EOFError) as err:  # CRC mismatch, truncated archive
        raise ValueError(f"{name}: cannot read from the archive ({err})") from err
    return decode_image(data, name, **options)


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a zip archive, with an error naming it when it is not one."""
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path}: not a valid zip archive ({err})") from err


def files_fingerprint(base: Path, relpaths: Iterable[str], labels: Iterable | None = None) -> str:
    """A digest of files under ``base``: relative paths, sizes, modification times (and labels).

    Cheap (one ``stat`` per file) and changes whenever a file is added, removed,
    renamed or rewritten, or (when ``labels`` are given) assigned another label.
    """
    relpaths = list(relpaths)
    labels = [""] * len(relpaths) if labels is None else list(labels)
    digest = hashlib.sha256(str(Path(base).resolve()).encode())
    for rel, label in zip(relpaths, labels, strict=True):
        st = os.stat(os.path.join(base, rel))
        digest.update(f"\0{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{label}".encode())
    return digest.hexdigest()


def _open(data: bytes, name: str, max_pixels: int | None) -> Image.Image:
    """``Image.open`` (the header only), refusing an image over ``max_pixels`` with its size named."""
    if max_pixels is None:
        return Image.open(io.BytesIO(data))
    with warnings.catch_warnings():  # refused below, naming the size, rather than warned about by Pillow
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise ImageTooLarge(f"{name}: {width}x{height} pixels, over the limit of {max_pixels}")
    return img


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    """``img`` as mode L (1 channel) or RGB (3), transparent pixels turned white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert("L" if channels == 1 else "RGB")
