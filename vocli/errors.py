"""One exception hierarchy; the CLI maps every ``VocliError`` to one line and exit code 1."""

from __future__ import annotations


class VocliError(Exception):
    """A problem the user can fix. ``str(err)`` is the one line shown to them.

    ``hint`` (optional) is a short "what to do" appended after the message.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class AnnotationError(VocliError):
    """A VOC XML file is malformed or inconsistent. ``path`` names the file."""

    def __init__(self, path, reason: str, hint: str | None = None):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}", hint)


class UnknownClassError(AnnotationError):
    """An object's class is not in the class list."""


class DownloadError(VocliError):
    """No mirror delivered the file."""


class ChecksumMismatch(VocliError):
    """A file's size or checksum differs from the expected one."""


class UnsafeArchiveError(VocliError):
    """A tar member would write outside the target or create a device."""


class DarknetFormatError(VocliError):
    """A .cfg or .weights file is malformed or does not match the other."""


class DatasetNotFoundError(VocliError):
    """An expected dataset folder, split list or image is missing."""


class ImageReadError(VocliError):
    """An image file is missing, not an image, or cannot be decoded. ``path`` names it."""

    def __init__(self, path, reason: str, hint: str | None = None):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}", hint)


class TrainingDivergedError(VocliError):
    """Training produced a NaN or infinite loss."""


class AnchorError(VocliError):
    """Boxes cannot be clustered as asked (no boxes, too few distinct shapes, bad k)."""


class OutputError(VocliError):
    """An output would overwrite an input, or a file that is not ours to replace."""


class CheckpointError(VocliError):
    """A .pt file is damaged (a CRC fails), unreadable, or holds something other than tensors."""


class WriteError(VocliError):
    """An output could not be written: disk full, size limit, quota, read-only or no permission."""
