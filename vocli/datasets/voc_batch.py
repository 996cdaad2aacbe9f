"""Many plain VOC XML files read at once, with numpy over their concatenated bytes.

The converters' fast path. ``voc.py`` reads one file at a time (and words every
error); this module reads a whole chunk of files with a fixed number of array
operations, about 7 us a file against 20-40 us for one file at a time (regular
expressions or lxml). It reads only the files it can prove well-formed and valid
under a strict subset of XML, and marks every other file for ``voc.py``'s checked
reading, so that together they read exactly what the checked reading alone would.

A *plain* file here: printable ASCII plus tab and LF (no CR), '&' only as ``&amp;``,
``&lt;``, ``&gt;``, ``&quot;`` or ``&apos;`` and never in a field read, an optional
``<?xml ...?>`` declaration, then elements without attributes (``<tag>`` and
``</tag>``, tag names of at most 16 characters); no comments, CDATA, DOCTYPE or
processing instructions, no '>' in text, nothing but whitespace around the root.
Fields read are text-only elements: ``<filename>``, ``<size>``'s width, height and
depth, each ``<object>``'s name, difficult, truncated and ``<bndbox>`` corners, each
at most once where it belongs (required ones exactly once). Numbers are plain
decimals (``375``, ``12.5``), read exactly as ``float()`` reads them. A file outside
that subset, or that the checked reading would reject (unknown class, box outside
the image, zero size...), is not read here.

How: the '<' and '>' of all files must alternate. Files made by one tool share their
sequence of tags and differ in text, so the checks that depend on the tags alone run
once per distinct sequence (``_structure``): tags nest when a file's depth (opens
minus closes) stays positive until its last tag and, level by level, opens and closes
alternate with the same names (one stable sort by level lines them up); fields are
found by the names of the tag, its parent and grandparent. That gives a layout, where
each field is counted in tags from the file's start; every file is compared tag by
tag with its group's first file, then the fields' texts are read in bulk (numbers
eight digits at a time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import repeat
from typing import Callable, Sequence

import numpy as np

from vocli.datasets.byte_spans import (LOW_MASK, blank_spans, byte_set, span_decimals, span_texts,
                                       words_at_every_offset)
from vocli.datasets.voc import MAX_ANNOTATION_BYTES, MAX_IMAGE_SIDE, MAX_OBJECTS
from vocli.paths import entry_name_problem


def _quoted(values: bytes) -> bytes:
    return rb"(?:\"(?:%s)\"|'(?:%s)')" % (values, values)


#: The XML declarations a plain file may open with (pattern source; ASCII-compatible encodings only).
XML_DECLARATION = (
    rb"<\?xml\s+version\s*=\s*" + _quoted(rb"1\.0")
    + rb"(?:\s+encoding\s*=\s*" + _quoted(rb"(?i:utf-8|us-ascii|ascii|iso-8859-1)") + rb")?"
    + rb"(?:\s+standalone\s*=\s*" + _quoted(rb"yes|no") + rb")?\s*\?>"
)
#: Deeper files are left to the checked reading (libxml2 refuses beyond 256 levels without huge_tree).
_MAX_PLAIN_DEPTH = 64
#: Larger files too: well under libxml2's 10 MB text-node limit, so a file read here never meets it.
_MAX_PLAIN_BYTES = min(1 << 20, MAX_ANNOTATION_BYTES)


_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123)) + b"_"
_NAME_START = byte_set(_LETTERS)
_NAME_CHAR = byte_set(_LETTERS + b"0123456789.-")
_NAME_CHAR[0] = True  # the zero padding of a name's 16-byte key
# Bytes that keep a file off this path: controls (tab and LF aside), CR, non-ASCII.
_REFUSED = ~byte_set(bytes(range(32, 127)) + b"\t\n")
# The references a plain file may hold ('&' starts one of them), as little-endian words.
_ENTITY_NAMES = (b"&amp;", b"&lt;", b"&gt;", b"&quot;", b"&apos;")
_ENTITIES = np.array([int.from_bytes(e, "little") for e in _ENTITY_NAMES], dtype=np.uint64)
_ENTITY_MASKS = np.array([(1 << (8 * len(e))) - 1 for e in _ENTITY_NAMES], dtype=np.uint64)
_DECLARATION = re.compile(XML_DECLARATION)
_KEY_BYTES = 16
_PADDING = bytes(_KEY_BYTES)
_ONES = np.uint64(0x0101010101010101)

_FIELDS = ("annotation", "filename", "size", "width", "height", "depth", "object", "name", "difficult",
           "truncated", "bndbox", "xmin", "ymin", "xmax", "ymax")
(_ANNOTATION, _FILENAME, _SIZE, _WIDTH, _HEIGHT, _DEPTH, _OBJECT, _NAME, _DIFFICULT, _TRUNCATED, _BNDBOX,
 _XMIN, _YMIN, _XMAX, _YMAX) = range(1, len(_FIELDS) + 1)
# The fields, then other tag names common in VOC files: valid names, no need to check them.
_NAMES = _FIELDS + ("folder", "source", "database", "image", "flickrid", "owner", "segmented", "pose", "occluded",
                    "part", "actions", "point", "x", "y", "jumping", "phoning", "reading", "ridingbike",
                    "ridinghorse", "running", "takingphoto", "usingcomputer", "walking", "other")
# Each name's 16-byte key as two little-endian words; no two names share the first word.
_NAME_LOW = np.array([int.from_bytes(f.encode()[:8], "little") for f in _NAMES], dtype=np.uint64)
_NAME_HIGH = np.array([int.from_bytes(f.encode()[8:16], "little") for f in _NAMES], dtype=np.uint64)


def _name_hash_multiplier(words: np.ndarray) -> np.uint64:
    """An odd multiplier under which the table's first words fall into distinct slots (searched, seeded)."""
    rng = np.random.default_rng(0)
    for _ in range(1000):
        multiplier = np.uint64(int(rng.integers(1, 1 << 62)) * 2 + 1)
        # a set, not np.unique: that imports numpy.ma (9 ms of every command's start)
        if len(set(((words * multiplier) >> np.uint64(64 - _SLOT_BITS)).tolist())) == len(words):
            return multiplier
    raise ImportError("voc_batch: no collision-free hash for the tag name table")


_SLOT_BITS = 10
_NAME_MULTIPLIER = _name_hash_multiplier(_NAME_LOW)
# Slot -> index into _NAMES; the empty slots point at an entry that a non-empty key never equals.
_SLOTS = np.full(1 << _SLOT_BITS, len(_NAMES), dtype=np.int64)
_SLOTS[(_NAME_LOW * _NAME_MULTIPLIER) >> np.uint64(64 - _SLOT_BITS)] = np.arange(len(_NAMES))
_NAME_LOW = np.append(_NAME_LOW, np.uint64(0))
_NAME_HIGH = np.append(_NAME_HIGH, np.uint64(0))
if len(set(_NAME_LOW.tolist())) != len(_NAMES) + 1 or max(map(len, _NAMES)) > 16:
    raise ImportError("voc_batch: tag name table keys collide")


def _code(level: int, name: int, parent: int = 0, grandparent: int = 0) -> int:
    """An open tag's code in ``_read``: its level, field number and those of its parent and grandparent."""
    return 4096 * level + 256 * grandparent + 16 * parent + name


# The fields read, by code: at level 2 under the root, 3 under <size> or <object>, 4 in an object's <bndbox>.
(_C_FILENAME, _C_SIZE, _C_OBJECT, _C_WIDTH, _C_HEIGHT, _C_DEPTH, _C_NAME, _C_DIFFICULT, _C_TRUNCATED, _C_BNDBOX,
 _C_XMIN, _C_YMIN, _C_XMAX, _C_YMAX) = range(14)
_CODES = np.array([_code(2, _FILENAME), _code(2, _SIZE), _code(2, _OBJECT)]
                  + [_code(3, f, _SIZE) for f in (_WIDTH, _HEIGHT, _DEPTH)]
                  + [_code(3, f, _OBJECT) for f in (_NAME, _DIFFICULT, _TRUNCATED, _BNDBOX)]
                  + [_code(4, f, _BNDBOX, _OBJECT) for f in (_XMIN, _YMIN, _XMAX, _YMAX)])
_CODES_LOW, _CODES_HIGH = _CODES, _CODES + 1
# Odd multipliers that spread a file's tags into its signature (a grouping key, compared exactly after).
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX_HIGH = np.uint64(0xC2B2AE3D27D4EB4F)


@dataclass
class PlainBatch:
    """What ``read_plain_batch`` read. F files, O objects (of the files read).

    plain: (F,) bool, False for a file left to the checked reading (its other
    entries are 0 or empty). filenames: (F,) the ``<filename>`` text, stripped;
    "" when absent or blank. width, height, depth: (F,) int64. first: (F + 1,) int64,
    file i's objects are ``first[i]:first[i + 1]``, in file order. class_ids: (O,)
    int64 indices into the class list. boxes: (O, 4) float64 xmin, ymin, xmax, ymax
    as written (1-based inclusive pixels). difficult, truncated: (O,) bool.
    """

    plain: np.ndarray
    filenames: list
    width: np.ndarray
    height: np.ndarray
    depth: np.ndarray
    first: np.ndarray
    class_ids: np.ndarray
    boxes: np.ndarray
    difficult: np.ndarray
    truncated: np.ndarray
    classes: tuple = ()  # what class_ids index: the classes given, or the names found in order


def read_plain_batch(datas: Sequence[bytes], classes: Sequence[str] | None) -> PlainBatch:
    """Read every plain, valid file of ``datas`` (the bytes of VOC XML files); see the module docstring.

    Objects whose class is not in ``classes`` make their file not plain (the checked
    reading names the class). ``classes=None``: any name is read, and ``classes`` of the
    result lists the names found, in order of first appearance.
    A ``<filename>`` that is not a plain name (``vocli.paths.entry_name_problem``) makes its
    file not plain too: the checked reading rejects it.
    """
    batch = _read_plain_batch(datas, classes)
    joined = "".join(batch.filenames)
    if not any(c in joined for c in "/\\:\0") and "." not in batch.filenames and ".." not in batch.filenames:
        return batch  # the usual case, in C: no name can be a path
    bad = [i for i, name in enumerate(batch.filenames) if name and entry_name_problem(name) is not None]
    if not bad:
        return batch
    left_out = list(datas)
    for i in bad:
        left_out[i] = b""  # not a VOC file: left to the checked reading, which reads the real bytes
    return _read_plain_batch(left_out, classes)


def _read_plain_batch(datas: Sequence[bytes], classes: Sequence[str]) -> PlainBatch:
    count = len(datas)
    # Files here are ASCII and names are read stripped: no other class name can match.
    index = None if classes is None else {
        name: i for i, name in enumerate(classes)
        if name.isascii() and name and name.strip() == name and "&" not in name}
    todo, read = _without_failures(datas, lambda some: _read(some, index))
    read.classes = tuple(classes) if classes is not None else read.classes
    if todo.size == count:
        return read
    plain = np.zeros(count, dtype=bool)
    plain[todo] = True
    filenames = [""] * count
    for i, name in zip(todo.tolist(), read.filenames):
        filenames[i] = name
    sizes = np.zeros((3, count), dtype=np.int64)
    sizes[:, todo] = read.width, read.height, read.depth
    objects = np.zeros(count, dtype=np.int64)
    objects[todo] = np.diff(read.first)
    return PlainBatch(plain, filenames, *sizes, np.concatenate([[0], np.cumsum(objects)]), read.class_ids,
                      read.boxes, read.difficult, read.truncated, read.classes)


def _without_failures(datas: Sequence[bytes], read: Callable) -> tuple[np.ndarray, object]:
    """(indices of the files kept, ``read`` of those files): ``read`` returns a result, or a (F,) bool
    mask of the files it refuses, and is called again without them until it returns a result.

    Each check of ``read`` marks every file it refuses, so this loops once per kind of problem.
    """
    todo = np.arange(len(datas))
    while True:
        result = read(datas if todo.size == len(datas) else [datas[i] for i in todo])
        if not isinstance(result, np.ndarray):
            return todo, result
        todo = todo[~result]


def _empty(count: int) -> PlainBatch:
    zeros = np.zeros(count, dtype=np.int64)
    return PlainBatch(np.ones(count, dtype=bool), [], zeros, zeros, zeros, np.zeros(count + 1, dtype=np.int64),
                      np.zeros(0, dtype=np.int64), np.zeros((0, 4)), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))


#: Layouts of the tag sequences seen in this process (see ``_read``): a memo, bounded.
_LAYOUTS: dict[bytes, np.ndarray | None] = {}
_LAYOUTS_MAX = 1 << 14


def _read(datas: Sequence[bytes], index: dict[str, int] | None) -> PlainBatch | np.ndarray:
    """The batch when every file is plain, else a (F,) bool mask of the files that are not.

    Files made by one tool share their tags and differ in text: the checks that depend
    on the tags alone (``_structure``) run once per distinct tag sequence, which yields
    a layout (where each field is, counted in tags from the file's start); every file
    is compared tag by tag with a file of its group, then its values are read.
    """
    count = len(datas)
    if count == 0:
        return _empty(0)
    t = _tags(datas)
    if isinstance(t, np.ndarray):
        return t
    lt, tags, first_tag, lt_file, words = t.lt, t.tags, t.first_tag, t.lt_file, t.words
    # A tag is its text between '<' and '>': at most 16 bytes, two words (zero beyond the text).
    length = t.gt - lt - 1
    too_long = length > 16
    if too_long.any():
        bad = np.zeros(count, dtype=bool)
        bad[lt_file[too_long]] = True
        return bad
    low = words[lt + 1] & LOW_MASK.take(np.minimum(length, 8))
    high = np.zeros(len(lt), dtype=np.uint64)
    long = np.flatnonzero(length > 8)
    high[long] = words[lt[long] + 9] & LOW_MASK.take(length[long] - 8)
    mixed = low ^ (high * _MIX_HIGH) if long.size else low
    position = np.arange(len(lt)) - first_tag.repeat(tags)
    signature = np.add.reduceat((mixed ^ position.astype(np.uint64)) * _MIX, first_tag)
    signature ^= tags.astype(np.uint64) * _MIX_HIGH
    _, group_first, group = np.unique(signature, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    # Each file against its group's first file, tag by tag (a signature can collide).
    representative = group_first[group]
    same_count = tags == tags[representative]
    twin = np.minimum((first_tag[representative]).repeat(tags) + position, len(lt) - 1)
    differs = low.take(twin) != low
    if long.size:
        differs |= high.take(twin) != high
    unmatched = ~same_count
    unmatched[lt_file[differs]] = True
    if unmatched.any():  # each such file is a group of its own
        loners = np.flatnonzero(unmatched)
        group[loners] = np.arange(len(group_first), len(group_first) + len(loners))
        group_first = np.concatenate([group_first, loners])

    layouts, missing = [], []
    for g, f in enumerate(group_first.tolist()):
        span = slice(first_tag[f], first_tag[f] + tags[f])
        key = low[span].tobytes() + high[span].tobytes()  # the tags exactly (no NUL in a tag)
        layout = _LAYOUTS.get(key, False)
        if layout is False:
            missing.append((g, f, key))
        layouts.append(layout)
    if missing:
        found = _structures([datas[f] for _, f, _ in missing])
        if len(_LAYOUTS) + len(missing) > _LAYOUTS_MAX:
            _LAYOUTS.clear()
        for (g, _, key), layout in zip(missing, found):
            _LAYOUTS[key] = layouts[g] = layout
    valid = np.array([layout is not None for layout in layouts])
    if not valid[group].all():
        return ~valid[group]

    # Each file's fields: its group's layout shifted to the file's first tag.
    table = np.concatenate(layouts)
    sizes = np.array([len(layout) for layout in layouts])
    starts = np.cumsum(sizes) - sizes
    n_objects = (sizes - 4) // 7  # a layout: 4 header fields, then 7 per object
    header = table[starts[group, None] + np.arange(4)]
    header = np.where(header >= 0, header + first_tag[:, None], -1)
    per_file = n_objects[group]
    object_file = np.repeat(np.arange(count), per_file)
    within = np.arange(len(object_file)) - np.repeat(np.cumsum(per_file) - per_file, per_file)
    rows = table[(starts[group] + 4)[object_file, None] + 7 * within[:, None] + np.arange(7)]
    rows = np.where(rows >= 0, rows + first_tag[object_file][:, None], -1)
    return _read_values(t, header, rows, object_file, index)


def _structures(datas: list[bytes]) -> list[np.ndarray | None]:
    """``_structure`` of each file; None where the file is not plain."""
    def structure(some: Sequence[bytes]) -> list | np.ndarray:
        if not some:
            return []
        t = _tags(some)
        return t if isinstance(t, np.ndarray) else _structure(t)

    result: list = [None] * len(datas)
    todo, found = _without_failures(datas, structure)
    for i, layout in zip(todo.tolist(), found):
        result[i] = layout
    return result


@dataclass
class _Tags:
    """A batch of F files cut into T tags; arrays over tags are in file order.

    a: the files' bytes end to end (declarations blanked out); words: the 8 bytes
    from each offset. lt, gt: (T,) offsets of each tag's '<' and '>'. tags, first_tag:
    (F,) count and first tag of each file; lt_file: (T,) the file of each tag.
    """

    count: int
    a: np.ndarray
    words: np.ndarray
    lt: np.ndarray
    gt: np.ndarray
    tags: np.ndarray
    first_tag: np.ndarray
    lt_file: np.ndarray


def _tags(datas: Sequence[bytes]) -> _Tags | np.ndarray:
    """The batch cut into tags, after the checks on bytes and tags; else a (F,) mask of the files that fail them."""
    count = len(datas)
    lengths = np.fromiter(map(len, datas), dtype=np.int64, count=count)
    if lengths.max() > _MAX_PLAIN_BYTES:
        return lengths > _MAX_PLAIN_BYTES
    ends = np.cumsum(lengths)
    starts = ends - lengths
    size = int(ends[-1])
    buf = b"".join([*datas, _PADDING])  # room for the last 8-byte words
    a = np.frombuffer(buf, dtype=np.uint8)
    words = words_at_every_offset(buf, size + _KEY_BYTES - 7)
    bad = np.zeros(count, dtype=bool)

    def reject(positions: np.ndarray) -> None:
        bad[np.searchsorted(ends, positions, side="right")] = True

    # Controls other than tab and LF, DEL and non-ASCII bytes: counted first (cheap), found if any.
    # Below 32 or from 127 up is above 94 once 32 is taken away (in uint8, which wraps).
    if not (buf.isascii() and np.count_nonzero((a[:size] - np.uint8(32)) > 94)
            == np.count_nonzero(a[:size] == 9) + np.count_nonzero(a[:size] == 10)):
        reject(np.flatnonzero(_REFUSED[a[:size]]))
    if b"&" in buf:
        amp = np.flatnonzero(a[:size] == ord("&"))
        reject(amp[~((words[amp, None] & _ENTITY_MASKS) == _ENTITIES).any(axis=1)])
    declared = np.flatnonzero((a[starts] == ord("<")) & (a[starts + 1] == ord("?")))
    body = starts  # where each file's content after its declaration starts
    if declared.size:
        a, body = a.copy(), starts.copy()  # the declarations blanked out of the copy
        for i in declared.tolist():
            m = _DECLARATION.match(datas[i])
            if m is None:
                bad[i] = True
            else:
                a[starts[i]:starts[i] + m.end()] = ord(" ")
                body[i] += m.end()
    if bad.any():
        return bad

    # Tags: '<' and '>' alternate within each file, starting with '<'.
    lt = np.flatnonzero(a[:size] == ord("<"))
    gt = np.flatnonzero(a[:size] == ord(">"))
    tags = np.diff(np.searchsorted(lt, ends), prepend=0)
    bad |= (tags != np.diff(np.searchsorted(gt, ends), prepend=0)) | (tags == 0)
    if bad.any():
        return bad
    lt_file = np.repeat(np.arange(count), tags)
    first_tag = np.cumsum(tags) - tags
    last_tag = first_tag + tags - 1
    if not ((lt < gt).all() and (gt[:-1] < lt[1:]).all()):
        bad[lt_file[(gt <= lt) | (np.append(lt[1:], size) <= gt)]] = True
        return bad
    # Outside the root element, whitespace only.
    bad |= ~blank_spans(a, body, lt[first_tag]) | ~blank_spans(a, gt[last_tag] + 1, ends)
    if bad.any():
        return bad
    return _Tags(count, a, words, lt, gt, tags, first_tag, lt_file)



def _structure(t: _Tags) -> list[np.ndarray] | np.ndarray:
    """Each file's layout (see ``_layout``), from its tags alone; else a (F,) mask of the files whose tags fail.

    The checks that depend on the tags only: names, nesting, the root, the fields'
    places and counts. Files with the same tags share the result.
    """
    count, a, words, lt, gt, tags, first_tag, lt_file = (t.count, t.a, t.words, t.lt, t.gt, t.tags, t.first_tag,
                                                          t.lt_file)
    last_tag = first_tag + tags - 1
    bad = np.zeros(count, dtype=bool)
    # Tag names: <name> or </name>, nothing else (no attributes, comments, PIs, self-closing tags).
    after_lt = lt + 1
    closing = a[after_lt] == ord("/")
    name_start = after_lt + closing
    name_length = gt - name_start
    bad[lt_file[(name_length < 1) | (name_length > _KEY_BYTES) | ~_NAME_START[a[name_start]]]] = True
    if bad.any():
        return bad
    low = words[name_start] & LOW_MASK.take(np.minimum(name_length, 8))
    high = np.zeros(len(lt), dtype=np.uint64)
    long = np.flatnonzero(name_length > 8)
    high[long] = words[name_start[long] + 8] & LOW_MASK.take(name_length[long] - 8)
    # Names in the table are valid as they are; others have their characters checked.
    entry = _SLOTS.take(((low * _NAME_MULTIPLIER) >> np.uint64(64 - _SLOT_BITS)).astype(np.intp))
    known = (_NAME_LOW.take(entry) == low) & (_NAME_HIGH.take(entry) == high)
    other = np.flatnonzero(~known)
    if other.size:
        name_chars = _NAME_CHAR.take(np.stack([low[other], high[other]], axis=1).view(np.uint8)).view(np.uint64)
        bad[lt_file[other[(name_chars[:, 0] & name_chars[:, 1]) != _ONES]]] = True
        if bad.any():
            return bad

    # Nesting: the depth after each tag, counted from its file's start, stays >= 1 up to
    # the file's last tag, which brings it to 0 (one root element).
    step = 1 - 2 * closing.astype(np.int32)
    depth = np.cumsum(step)
    depth -= (depth - step)[first_tag].repeat(tags)
    if np.count_nonzero(depth <= 0) != count or (depth[last_tag] != 0).any():
        is_last = np.zeros(len(lt), dtype=bool)
        is_last[last_tag] = True
        bad[lt_file[(depth <= 0) & ~is_last]] = True
        bad |= depth[last_tag] != 0
        return bad
    if int(depth.max()) > _MAX_PLAIN_DEPTH:
        bad[lt_file[depth > _MAX_PLAIN_DEPTH]] = True
        return bad
    # Each tag's level: depth after an open, before a close. In a sequence that nests, the
    # tags of each level alternate open, close, open, close in file order, and each close
    # must carry its open's name.
    level = (depth + closing).astype(np.int16)
    by_level = np.argsort(level, kind="stable")
    pair_open, pair_close = by_level[0::2], by_level[1::2]
    mismatched = closing[pair_open] | ~closing[pair_close] | (low[pair_open] != low[pair_close])
    if long.size:
        mismatched |= high[pair_open] != high[pair_close]
    if mismatched.any():
        bad[lt_file[pair_open[mismatched]]] = True
        return bad

    # Fields. A field is an open tag whose name is in _FIELDS, at its place: the code of an
    # open tag combines its field number with its parent's (and grandparent's for level 4).
    field = np.where(known & (entry < len(_FIELDS)), entry + 1, 0)
    bad |= field[first_tag] != _ANNOTATION
    opens = np.flatnonzero(~closing)
    open_level = level[opens]
    open_field = field[opens]
    leaf = closing[np.minimum(opens + 1, len(lt) - 1)]  # text only: its close comes next
    # The enclosing element at levels 2 and 3 of each open tag: running counts of those opens.
    at2 = open_level == 2
    at3 = open_level == 3
    within2 = np.cumsum(at2) - 1
    within3 = np.cumsum(at3) - 1
    field2 = open_field[at2]
    field3 = open_field[at3]
    parent = np.zeros(len(opens), dtype=np.int64)
    parent[at3] = field2[within2[at3]]
    at4 = open_level == 4
    parent[at4] = field3[within3[at4]] + 16 * field2[within2[at4]]
    code = (open_field + 16 * parent + 4096 * open_level).astype(np.int16)  # below 2**15 up to level 7
    code[open_level > 4] = 0
    by_code = np.argsort(code, kind="stable")  # a radix sort for 16-bit keys
    sorted_code = code[by_code]
    bounds = np.searchsorted(sorted_code, _CODES_LOW), np.searchsorted(sorted_code, _CODES_HIGH)

    def tags_of(which: int) -> np.ndarray:
        """Indices (into ``opens``) of the tags with code ``_CODES[which]``, in file order."""
        return by_code[bounds[0][which]:bounds[1][which]]

    # One <size> and at most one <filename> per file; objects numbered in file order.
    objects = tags_of(_C_OBJECT)
    n_objects = len(objects)
    object_file = lt_file[opens[objects]]
    object_of = np.cumsum(at2 & (open_field == _OBJECT)) - 1  # for tags inside an object
    sizes = tags_of(_C_SIZE)
    filenames = tags_of(_C_FILENAME)
    bad |= np.bincount(lt_file[opens[sizes]], minlength=count) != 1
    bad |= np.bincount(lt_file[opens[filenames]], minlength=count) > 1
    bad[lt_file[opens[filenames[~leaf[filenames]]]]] = True

    def one_each(which: int, owners: np.ndarray, owner_file: np.ndarray, required: bool) -> np.ndarray:
        """The open tag of each owner's (file's or object's) field ``which``, -1 if none; marks bad files."""
        found = tags_of(which)
        owner = owners[found]
        counts = np.bincount(owner, minlength=len(owner_file))
        wrong = (counts != 1) if required else (counts > 1)
        wrong[owner[~leaf[found]]] = True
        bad[owner_file[wrong]] = True
        tag = np.full(len(owner_file), -1, dtype=np.int64)
        tag[owner] = opens[found]
        return tag

    file_of, files = lt_file[opens], np.arange(count)
    width_tag = one_each(_C_WIDTH, file_of, files, True)
    height_tag = one_each(_C_HEIGHT, file_of, files, True)
    depth_tag = one_each(_C_DEPTH, file_of, files, False)
    name_tag = one_each(_C_NAME, object_of, object_file, True)
    difficult_tag = one_each(_C_DIFFICULT, object_of, object_file, False)
    truncated_tag = one_each(_C_TRUNCATED, object_of, object_file, False)
    boxes_per_object = np.bincount(object_of[tags_of(_C_BNDBOX)], minlength=n_objects)
    bad[object_file[boxes_per_object != 1]] = True
    corner_tags = [one_each(c, object_of, object_file, True) for c in (_C_XMIN, _C_YMIN, _C_XMAX, _C_YMAX)]
    if bad.any():
        return bad

    filename_tag = np.full(count, -1, dtype=np.int64)
    filename_tag[lt_file[opens[filenames]]] = opens[filenames]
    # Relative to each file's first tag, so that files with the same tags share them.
    header = np.stack([width_tag, height_tag, depth_tag, filename_tag], axis=1)
    header = np.where(header >= 0, header - first_tag[:, None], -1)
    rows = np.stack([name_tag, difficult_tag, truncated_tag, *corner_tags], axis=1).reshape(-1, 7)
    rows = np.where(rows >= 0, rows - first_tag[object_file][:, None], -1)
    first_object = np.concatenate([[0], np.cumsum(np.bincount(object_file, minlength=count))]).tolist()
    return [np.concatenate([header[f], rows[first_object[f]:first_object[f + 1]].ravel()]) for f in range(count)]


def _read_values(t: _Tags, header: np.ndarray, object_tags: np.ndarray, object_file: np.ndarray,
                 index: dict[str, int]) -> PlainBatch | np.ndarray:
    """The fields' values, checked; else a (F,) mask of the files with a value the checked reading refuses.

    header: (F, 4) open tags of width, height, depth, filename (-1: absent);
    object_tags: (O, 7) of name, difficult, truncated, xmin, ymin, xmax, ymax.
    """
    count, a, words, lt, gt = t.count, t.a, t.words, t.lt, t.gt
    bad = np.zeros(count, dtype=bool)
    n_objects = len(object_file)
    width_tag, height_tag, depth_tag, filename_tag = header.T
    name_tag, difficult_tag, truncated_tag = object_tags[:, 0], object_tags[:, 1], object_tags[:, 2]
    corner_tags = list(object_tags[:, 3:].T)

    # Optional fields (tag -1) read as blank text.
    def text_bounds(open_tags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        there = open_tags >= 0
        return np.where(there, gt[open_tags] + 1, 0), np.where(there, lt[np.minimum(open_tags + 1, len(lt) - 1)], 0)

    numbers = [width_tag, height_tag, depth_tag, difficult_tag, truncated_tag, *corner_tags]
    values, blank, valid = span_decimals(a, words, *text_bounds(np.concatenate(numbers)))
    cut = np.cumsum([0] + [len(t) for t in numbers]).tolist()
    values, blank, valid = ([column[i:j] for i, j in zip(cut[:-1], cut[1:])] for column in (values, blank, valid))
    width, height, depth_value = values[0], values[1], values[2]
    bad |= ~(valid[0] & valid[1] & valid[2]) | blank[0] | blank[1]
    bad |= (width < 1) | (height < 1) | (width != np.floor(width)) | (height != np.floor(height))
    bad |= ~blank[2] & (depth_value != np.floor(depth_value))
    bad |= (width > MAX_IMAGE_SIDE) | (height > MAX_IMAGE_SIDE) | (depth_value > MAX_IMAGE_SIDE)
    bad |= np.bincount(object_file, minlength=count) > MAX_OBJECTS
    object_bad = ~(valid[3] & valid[4] & valid[5] & valid[6] & valid[7] & valid[8])
    object_bad |= blank[5] | blank[6] | blank[7] | blank[8]
    boxes = np.stack(values[5:], axis=1)
    object_bad |= ~((0 <= boxes[:, 0]) & (boxes[:, 0] <= boxes[:, 2]) & (boxes[:, 2] <= width[object_file])
                    & (0 <= boxes[:, 1]) & (boxes[:, 1] <= boxes[:, 3]) & (boxes[:, 3] <= height[object_file]))

    # Class names and file names as strings, all cut out in one go; a class by dictionary lookup.
    names = span_texts(a, *text_bounds(name_tag))
    found = ()
    if index is None:  # any name but a blank one or one holding a reference (the checked reading resolves it)
        vocabulary: dict[str, int] = {}
        class_ids = np.fromiter(map(vocabulary.setdefault, names, map(len, repeat(vocabulary, n_objects))),
                                dtype=np.int64, count=n_objects)
        found = tuple(vocabulary)
        wrong = [i for i, name in enumerate(found) if not name or "&" in name]
        if wrong:
            object_bad |= np.isin(class_ids, wrong)
    else:
        class_ids = np.fromiter(map(index.get, names, repeat(-1, n_objects)), dtype=np.int64, count=n_objects)
    object_bad |= class_ids < 0
    bad[object_file[object_bad]] = True
    if bad.any():
        return bad
    file_names = span_texts(a, *text_bounds(filename_tag))
    if "&" in "".join(file_names):  # a reference: left to the checked reading, which resolves it
        bad[["&" in name for name in file_names]] = True
        return bad
    first = np.concatenate([[0], np.cumsum(np.bincount(object_file, minlength=count))])
    return PlainBatch(np.ones(count, dtype=bool), file_names, width.astype(np.int64), height.astype(np.int64),
                      np.where(blank[2], 3, depth_value).astype(np.int64), first, class_ids, boxes,
                      values[3] >= 1, values[4] >= 1, found)
