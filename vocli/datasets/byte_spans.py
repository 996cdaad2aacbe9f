"""numpy over byte spans: many short texts of one buffer read at once.

A span is ``a[starts[i]:ends[i]]`` of a uint8 array; ``words`` is the view of the
same buffer that gives the 8 bytes (little-endian uint64) from every offset, for
reading up to eight bytes of each span in one gather (SWAR: SIMD within a register).
"""

from __future__ import annotations

import numpy as np


def byte_set(chars: bytes) -> np.ndarray:
    """(256,) bool: which byte values are in ``chars``."""
    table = np.zeros(256, dtype=bool)
    table[np.frombuffer(chars, dtype=np.uint8)] = True
    return table


def words_at_every_offset(buf: bytes, count: int) -> np.ndarray:
    """(count,) little-endian uint64, the i-th made of ``buf[i:i + 8]`` (a view; ``buf`` must reach count + 7)."""
    return np.ndarray((count,), dtype="<u8", buffer=buf, strides=(1,))


SPACE = byte_set(b" \t\n")
#: LOW_MASK[k]: the low k bytes of a little-endian uint64.
LOW_MASK = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
_MAX_DIGITS = 15  # a mantissa below 2**53: one correctly rounded division gives float()'s value
_POW10 = 10.0 ** np.arange(_MAX_DIGITS + 1)
# Constants of the eight-digit SWAR reading (``_digits8``).
_ZERO_DIGITS = np.uint64(0x3030303030303030)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)
_SIXES = np.uint64(0x0606060606060606)
_THREES = np.uint64(0x3333333333333333)
_PAIR_MASK = np.uint64(0x000000FF000000FF)
_MUL_HIGH = np.uint64(100 + (1000000 << 32))
_MUL_LOW = np.uint64(1 + (10000 << 32))


def blank_spans(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(M,) bool: whether each span ``a[starts[i]:ends[i]]`` is whitespace only (tab, LF, space)."""
    spaces = np.ones(len(starts), dtype=bool)
    chars, segment = gather_spans(a, starts, ends)
    spaces[segment[~SPACE[chars]]] = False
    return spaces


def gather_spans(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of the spans ``a[starts[i]:ends[i]]`` end to end, and the span each came from."""
    lengths = ends - starts
    offsets = np.cumsum(lengths) - lengths
    segment = np.repeat(np.arange(len(starts)), lengths)
    return a[np.repeat(starts - offsets, lengths) + np.arange(len(segment))], segment


def span_texts(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[str]:
    """The texts ``a[starts[i]:ends[i]]``, stripped, as strings; each is followed by a '<' in ``a`` (or empty)."""
    if not len(starts):
        return []
    present = ends > starts
    chars, _ = gather_spans(a, starts, np.where(present, ends + 1, starts))  # each text with its '<'
    texts = chars.tobytes().decode("ascii").split("<")
    if not present.all():
        texts = iter(texts)
        texts = [next(texts) if there else "" for there in present.tolist()]
    else:
        texts.pop()
    if (SPACE[a[starts[present]]] | SPACE[a[ends[present] - 1]]).any():
        texts = list(map(str.strip, texts))
    return texts


def _digits8(words: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, ok): texts of 1 to 8 ASCII digits read as integers, eight bytes at a time (SWAR).

    The text's bytes are moved to the top of a little-endian word and the bottom
    filled with '0's, so every text reads as eight digits with leading zeros.
    """
    fill = (8 - np.clip(lengths, 1, 8)).astype(np.uint64)
    x = (words[starts] << (fill * np.uint64(8))) | (_ZERO_DIGITS & LOW_MASK[fill])
    ok = (lengths >= 1) & (lengths <= 8) & (
        ((x & _HIGH_NIBBLES) | (((x + _SIXES) & _HIGH_NIBBLES) >> np.uint64(4))) == _THREES)
    x = x - _ZERO_DIGITS
    x = x * np.uint64(10) + (x >> np.uint64(8))  # pairs of digits
    x = (((x & _PAIR_MASK) * _MUL_HIGH) + (((x >> np.uint64(16)) & _PAIR_MASK) * _MUL_LOW)) >> np.uint64(32)
    return x.astype(np.float64), ok


def span_decimals(a: np.ndarray, words: np.ndarray, starts: np.ndarray,
              ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the texts ``a[starts[i]:ends[i]]`` as ``float()`` would, for plain decimals.

    Returns (values, blank, valid), each (M,): a blank text (whitespace only) is valid
    with value 0; a valid one is otherwise optional whitespace, digits with at most one
    '.', at most 15 digits in all, optional whitespace. Exact: the digits make an
    integer below 2**53, divided once by a power of ten, both exact in float64, so the
    one rounding is float()'s.
    """
    values, fast = _digits8(words, starts, ends - starts)
    if fast.all():
        return values, np.zeros(len(starts), dtype=bool), fast
    slow = np.flatnonzero(~fast)
    slow_values, blank, valid = _decimals_slowly(a, starts[slow], ends[slow])
    values[slow] = slow_values
    all_blank = np.zeros(len(starts), dtype=bool)
    all_blank[slow] = blank
    fast[slow] = valid
    return values, all_blank, fast


def _decimals_slowly(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``span_decimals`` for any text: byte by byte."""
    m = len(starts)
    chars, segment = gather_spans(a, starts, ends)
    digit = (chars >= ord("0")) & (chars <= ord("9"))
    dot = chars == ord(".")
    body = digit | dot
    space = SPACE[chars]
    valid = np.bincount(segment[~(body | space)], minlength=m) == 0
    # One run of digits and dots per text: a body char after a non-body one starts a run.
    run_start = body & np.concatenate([[True], ~body[:-1] | (segment[1:] != segment[:-1])])
    runs = np.bincount(segment[run_start], minlength=m)
    digits = np.bincount(segment[digit], minlength=m)
    dots = np.bincount(segment[dot], minlength=m)
    blank = runs == 0
    valid &= blank | ((runs == 1) & (digits >= 1) & (dots <= 1) & (digits <= _MAX_DIGITS))
    # Place values: digits after this one in its text, and digits after the dot.
    digits_before = np.concatenate([[0], np.cumsum(digits)])[segment]  # in earlier texts
    after = np.clip(digits[segment] + digits_before - np.cumsum(digit), 0, _MAX_DIGITS)
    mantissa = np.bincount(segment[digit], weights=(chars[digit] - ord("0")) * _POW10[after[digit]], minlength=m)
    seen_dot = np.cumsum(dot) - np.concatenate([[0], np.cumsum(dots)])[segment]  # dots up to here in the text
    fraction = np.bincount(segment[digit & (seen_dot > 0)], minlength=m)
    values = mantissa / _POW10[np.minimum(fraction, _MAX_DIGITS)]
    return np.where(valid, values, 0.0), blank, valid
