"""Reading PyTorch and HDF5 files from anywhere: every failure one line naming the file and the cause.

``torch.load(..., weights_only=True)`` never runs code from the file, but its errors are long
and one of them advises loading again with ``weights_only=False``, which would run whatever
the file holds. vocli never suggests that: a file that holds other objects is simply not a
vocli file.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
from pathlib import Path
from typing import Any, Iterator

from vocli.errors import VocliError

# What the weights-only unpickler names when it refuses an object, in the torch versions we support.
_REFUSED = (
    re.compile(r"Unsupported global: GLOBAL ([\w.]+)"),
    re.compile(r"unsupported GLOBAL ([\w.]+)"),
    re.compile(r"Unsupported operand (\d+)"),
)


def load_failure_reason(err: BaseException) -> str:
    """One line saying why ``torch.load(weights_only=True)`` failed, without torch's advice."""
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in text or "Weights only load failed" in text:
        for pattern in _REFUSED:
            found = pattern.search(text)
            if found:
                return f"it holds objects vocli does not load ({found.group(1)}), only tensors and plain values"
        return "it holds objects vocli does not load, only tensors and plain values"
    if "PytorchStreamReader" in text or "zip archive" in text or "central directory" in text:
        detail = text.split("PytorchStreamReader failed", 1)[-1].split(". ", 1)[0].strip(" .:")
        return f"not a readable PyTorch zip ({detail})" if detail else "not a readable PyTorch zip"
    if isinstance(err, (EOFError, KeyError, ValueError, IndexError, TypeError, AttributeError)):
        return f"not a PyTorch file ({type(err).__name__})"
    first = text.strip().splitlines()[0][:120] if text.strip() else ""
    return f"cannot be read ({type(err).__name__}{': ' + first if first else ''})"


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint", hint: str | None = None,
                    error: type[VocliError] = VocliError) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; raises ``error`` naming ``path``
    and the cause in one line (``what`` names the kind of file expected, e.g. "vocli checkpoint")."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found", hint=hint) from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}", hint=hint) from None
    except MemoryError:
        raise error(f"{path}: not enough memory to load this {what}", hint=hint) from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise error(f"{path}: not a {what}: {load_failure_reason(err)}", hint=hint) from None


# --------------------------------------------------------------------------- HDF5

_H5_DETAIL = re.compile(r"\(([^()]*(?:\([^()]*\)[^()]*)*)\)\s*'?\s*$")
_H5_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def hdf5_failure_reason(err: BaseException) -> str:
    """One line for an h5py error: what the HDF5 library said, without its call names."""
    text = str(err).strip().strip("'\"")
    truncated = _H5_TRUNCATED.search(text)
    if truncated:
        have, want = (int(v) for v in truncated.groups())
        return f"the file is cut short ({have:,} of {want:,} bytes)"
    if "file signature not found" in text:
        return "not an HDF5 file"
    detail = _H5_DETAIL.search(text)
    detail_text = detail.group(1) if detail else text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, KeyError) and "Unable" not in text and "Can't" not in text:
        return f"no {detail_text} in it"
    return f"damaged HDF5 data ({detail_text})"


@contextlib.contextmanager
def hdf5_errors(path: str | os.PathLike, what: str, hint: str | None = None,
                error: type[VocliError] = VocliError) -> Iterator[None]:
    """Inside the block, an h5py failure (open or read) becomes one ``error`` line naming ``path``:
    ``"<path>: not a readable <what>: <cause>"``. VocliErrors pass through unchanged."""
    try:
        yield
    except VocliError:
        raise
    except FileNotFoundError:
        raise error(f"{path}: {what} not found", hint=hint) from None
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as err:
        raise error(f"{path}: not a readable {what}: {hdf5_failure_reason(err)}", hint=hint) from None
