"""HDF5 files from anywhere (converted weights, SSD targets): every h5py failure one line naming the file.

h5py reports a damaged or foreign file as the HDF5 library's message, wrapped in the name of
the call that failed ("Unable to synchronously open file (truncated file: eof = 5704, ...)").
``hdf5_errors`` turns these into ``<path>: not a readable <what>: <cause>``.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator

from vocli.errors import VocliError

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
