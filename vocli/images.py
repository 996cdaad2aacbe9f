"""Reading images and fitting them to the network input (letterbox), shared by train, evaluate and detect.

Pixel conventions here are continuous and 0-based: the image spans ``[0, W] x [0, H]``.
Converting to VOC's 1-based inclusive corners happens in the consumers (metrics, XML writers).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from vocli.errors import ImageReadError

#: Suffixes ``detect`` treats as images when scanning folders and globs.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


#: The most pixels an image may have (width x height): Pillow's own warning limit, 256 MiB
#: of RGB. A header claiming more (a "decompression bomb": 20000 x 20000 in a few KB of
#: JPEG) is refused before any pixel is decoded; real VOC images are about 500 x 375.
MAX_IMAGE_PIXELS = 89_478_485


def _too_large(path: Path, pixels: int, size: str = "") -> ImageReadError:
    return ImageReadError(path, f"image {size}has {pixels:,} pixels, over the limit of {MAX_IMAGE_PIXELS:,} "
                                "(a decompression bomb?)", hint="resize it or remove it")


@contextlib.contextmanager
def _opened(path: Path) -> Iterator:
    """``Image.open(path)`` whose every failure, and a size over ``MAX_IMAGE_PIXELS``, is an ``ImageReadError``.

    Pillow's decompression-bomb warning is made an error for the open (it comes before the
    size can be checked here), and the size is checked here too, whatever limit Pillow has been
    given. Only the header has been read when the image is yielded.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image Pillow can read", hint="use JPEG or PNG files") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        claimed = re.search(r"\((\d+) pixels\)", str(err))
        raise _too_large(path, int(claimed.group(1)) if claimed else MAX_IMAGE_PIXELS + 1) from None
    except (OSError, ValueError, SyntaxError) as err:  # a header Pillow recognises but cannot read
        raise ImageReadError(path, f"cannot decode image ({err})", hint="re-download or remove the file") from None
    with im:
        width, height = im.size
        if width * height > MAX_IMAGE_PIXELS:
            raise _too_large(path, width * height, f"{width}x{height} ")
        yield im


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` into (H, W, 3) uint8 RGB. Raises ``ImageReadError`` naming the file.

    Grey, palette and alpha images are converted to RGB. EXIF orientation is not
    applied: VOC annotations refer to the pixels as stored. Images over
    ``MAX_IMAGE_PIXELS`` are refused from their header, before decoding.
    """
    path = Path(path)
    with _opened(path) as im:
        try:
            im.load()
            rgb = im.convert("RGB")
        except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt data
            raise ImageReadError(path, f"cannot decode image ({err})", hint="re-download or remove the file") from None
    return np.asarray(rgb, dtype=np.uint8)


def read_image_size(path: str | os.PathLike) -> tuple[int, int, int]:
    """(width, height, bands) from the header only. Raises ``ImageReadError`` as ``load_image`` would."""
    with _opened(Path(path)) as im:
        return im.width, im.height, len(im.getbands())


@dataclass(frozen=True)
class LetterboxInfo:
    """How an image was placed into the square network input.

    Letterboxed pixel ``x_l`` corresponds to original pixel ``(x_l - pad_x) / scale``.
    ``pad_x``/``pad_y`` are the offsets of the resized image's top-left corner.
    """

    scale: float
    pad_x: float
    pad_y: float
    orig_w: int
    orig_h: int


def letterbox(image: np.ndarray, size: int, color: int = 114) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize (H, W, 3) uint8 to fit ``size x size`` keeping the aspect ratio, pad centred with ``color``.

    Returns the (size, size, 3) uint8 image and the ``LetterboxInfo`` to map boxes back.
    """
    from PIL import Image

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"letterbox expects an (H, W, 3) image, got shape {image.shape}")
    if size <= 0:
        raise ValueError(f"letterbox size must be positive, got {size}")
    h, w = image.shape[:2]
    scale = min(size / w, size / h)
    new_w = max(1, min(size, int(round(w * scale))))
    new_h = max(1, min(size, int(round(h * scale))))
    if (new_w, new_h) != (w, h):
        resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    else:
        resized = image
    left = (size - new_w) // 2
    top = (size - new_h) // 2
    out = np.full((size, size, 3), color, dtype=np.uint8)
    out[top:top + new_h, left:left + new_w] = resized
    return out, LetterboxInfo(scale=float(scale), pad_x=float(left), pad_y=float(top), orig_w=int(w), orig_h=int(h))


def unletterbox_boxes(boxes, info: LetterboxInfo):
    """(N, 4) xyxy in letterboxed pixels -> (N, 4) xyxy in original 0-based pixels, clipped to the image.

    Works on numpy arrays and torch tensors (same type out as in).
    """
    pad = [info.pad_x, info.pad_y, info.pad_x, info.pad_y]
    limit = [info.orig_w, info.orig_h, info.orig_w, info.orig_h]
    if hasattr(boxes, "clamp"):  # torch
        import torch

        pad_t = torch.tensor(pad, dtype=boxes.dtype, device=boxes.device)
        lim_t = torch.tensor(limit, dtype=boxes.dtype, device=boxes.device)
        out = (boxes - pad_t) / info.scale
        return torch.minimum(out.clamp(min=0), lim_t)
    out = (np.asarray(boxes, dtype=np.float64) - np.array(pad)) / info.scale
    return np.minimum(np.clip(out, 0, None), np.array(limit, dtype=np.float64))


def to_tensor_batch(images: list[np.ndarray]):
    """List of (S, S, 3) uint8 -> (B, 3, S, S) float32 tensor in [0, 1] (the model input)."""
    import torch

    batch = torch.from_numpy(np.stack(images))  # (B, S, S, 3) uint8
    return batch.permute(0, 3, 1, 2).float().div_(255.0)
