"""Reading images and fitting them to the network input (letterbox), shared by train, evaluate and detect.

Pixel conventions here are continuous and 0-based: the image spans ``[0, W] x [0, H]``.
Converting to VOC's 1-based inclusive corners happens in the consumers (metrics, XML writers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocli.errors import ImageReadError

#: Suffixes ``detect`` treats as images when scanning folders and globs.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` into (H, W, 3) uint8 RGB. Raises ``ImageReadError`` naming the file.

    Grey, palette and alpha images are converted to RGB. EXIF orientation is not
    applied: VOC annotations refer to the pixels as stored.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image Pillow can read", hint="use JPEG or PNG files") from None
    except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt data
        raise ImageReadError(path, f"cannot decode image ({err})", hint="re-download or remove the file") from None
    return np.asarray(rgb, dtype=np.uint8)


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
