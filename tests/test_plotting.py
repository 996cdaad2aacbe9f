"""PIL charts: valid PNGs of the promised size, empty and NaN input, atomic writes, readable drawings."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vocli import plotting


def _png_header(path) -> tuple[int, int]:
    """Width and height read straight from the PNG signature + IHDR chunk (checked by its CRC)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(kind + body) == crc
    width, height = struct.unpack(">II", body[:8])
    return width, height


def _distinct_colours(path) -> int:
    with Image.open(path) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def _no_temp_files(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_line_chart_size_and_content(tmp_path):
    x = np.arange(20)
    out = plotting.line_chart(tmp_path / "loss.png", {"train": (x, 1 / (x + 1)), "val": (x, 2 / (x + 2))},
                              "Loss", "epoch", "loss")
    assert out == tmp_path / "loss.png"
    assert _png_header(out) == (800, 500)
    assert _distinct_colours(out) > 20  # text, grid, two line colours, anti-aliasing
    with Image.open(out) as im:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    # Both series colours appear.
    for col in plotting.PALETTE[:2]:
        assert (np.abs(pixels.astype(int) - col).sum(1) < 30).sum() > 50
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize("series", [{}, {"a": ([], [])}, {"a": ([math.nan, 1.0], [1.0, math.inf])},
                                    {"a": ([1, 1, 1], [2, 2, 2])}])
def test_line_chart_degenerate_input(tmp_path, series):
    out = plotting.line_chart(tmp_path / "x.png", series, "t", "x", "y", size=(300, 200))
    assert _png_header(out) == (300, 200)


def test_line_chart_nan_breaks_line_and_limits(tmp_path):
    ys = [0.0, 0.5, math.nan, 0.7, 1.0]
    out = plotting.line_chart(tmp_path / "pr.png", {"p": (range(5), ys)}, "t", "x", "y", xlim=(0, 4), ylim=(0, 1))
    assert _png_header(out) == (800, 500)


def test_bar_chart_many_and_few_labels(tmp_path):
    names = [f"class_with_long_name_{i}" for i in range(20)]
    a = plotting.bar_chart(tmp_path / "a.png", names, list(range(20)), "Objects", "count")
    b = plotting.bar_chart(tmp_path / "b.png", ["x", "y"], [3, math.nan], "Objects", "count", size=(400, 300))
    c = plotting.bar_chart(tmp_path / "c.png", [], [], "Empty", "count")
    assert _png_header(a) == (800, 500) and _png_header(b) == (400, 300) and _png_header(c) == (800, 500)


def test_bar_heights_are_proportional(tmp_path):
    out = plotting.bar_chart(tmp_path / "bars.png", ["a", "b"], [10, 40], "t", "v", size=(400, 400))
    with Image.open(out) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    heights = []
    for col in plotting.PALETTE[:2]:
        mask = np.abs(rgb - col).sum(-1) < 10
        rows = np.where(mask.any(1))[0]
        heights.append(rows.max() - rows.min() + 1)
    # 40 / 10 = 4, within a pixel or two of rounding.
    assert heights[1] / heights[0] == pytest.approx(4.0, rel=0.08)


def test_scatter_with_highlight_and_empty(tmp_path):
    rng = np.random.default_rng(0)
    groups = {"a": (rng.random(300), rng.random(300)), "b": (rng.random(5), [math.nan] * 5)}
    out = plotting.scatter_chart(tmp_path / "s.png", groups, "Boxes", "w", "h",
                                 highlight={"anchors": ([0.2, 0.5], [0.3, 0.6])})
    assert _png_header(out) == (800, 600)
    empty = plotting.scatter_chart(tmp_path / "e.png", {}, "Boxes", "w", "h")
    assert _png_header(empty) == (800, 600)


def test_multi_line_grid_size(tmp_path):
    panels = [(f"class {i}", {"pr": ([0, 0.5, 1], [1, 0.8, 0.2])}) for i in range(5)]
    out = plotting.multi_line_grid(tmp_path / "g.png", panels, "recall", cols=3)
    assert _png_header(out) == (3 * 340, 2 * 250)
    one = plotting.multi_line_grid(tmp_path / "one.png", panels[:1], "recall", cols=3)
    assert _png_header(one) == (340, 250)
    none = plotting.multi_line_grid(tmp_path / "none.png", [], "recall")
    assert _png_header(none) == (340, 250)
    fixed = plotting.multi_line_grid(tmp_path / "fixed.png", panels[:2], "recall", cols=2, xlim=(0, 1), ylim=(0, 1))
    assert _png_header(fixed) == (680, 250)


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "c.png"
    target.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(RuntimeError):
        plotting.bar_chart(target, ["a"], [1], "t", "v")
    assert target.read_bytes() == b"old"
    assert _no_temp_files(tmp_path)


def test_nice_ticks_hand_worked():
    assert plotting.nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert plotting.nice_ticks(0.1, 5.2) == [0, 2, 4, 6]
    assert plotting.nice_ticks(-3, 17) == [-5, 0, 5, 10, 15, 20]
    ticks = plotting.nice_ticks(0, 1)
    assert ticks == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_palette_distinct():
    cols = [plotting.colour(i) for i in range(40)]
    assert len(set(cols)) == 40
    assert len(set(plotting.PALETTE)) == len(plotting.PALETTE) == 20


def test_draw_detections_outlines_in_class_colour():
    image = Image.new("RGB", (200, 160), (128, 128, 128))
    out = plotting.draw_detections(image, np.array([[20, 40, 120, 140], [130, 10, 190, 60]]),
                                   ["cat", "dog", "cow", "bird"], [0.9, 0.4], [1, 3])
    assert out.size == image.size and out is not image
    assert image.getpixel((20, 100)) == (128, 128, 128)  # input untouched
    assert out.getpixel((20, 100)) == plotting.colour(1)  # left edge of box 1
    assert out.getpixel((190, 30)) == plotting.colour(3)  # right edge of box 2
    # Label backgrounds are filled above box 1.
    assert out.getpixel((21, 38)) == plotting.colour(1)


def test_draw_detections_labels_are_class_names():
    # As many boxes as class names: labels are still looked up by class id, not by position.
    image = Image.new("RGB", (200, 100), (255, 255, 255))
    boxes = np.array([[10, 40, 90, 95], [110, 40, 190, 95]])
    names = ["aa", "bbbbbbbbbbbbbb"]
    out = np.asarray(plotting.draw_detections(image, boxes, names, None, [1, 0]))
    tag_width = [(np.abs(out[25:40, x0:x0 + 100].astype(int) - plotting.colour(c)).sum(-1) == 0).any(0).sum()
                 for x0, c in ((10, 1), (110, 0))]
    assert tag_width[0] > 2 * tag_width[1]  # the long name sits on the first box (class 1)


def test_draw_detections_unknown_id_and_empty():
    image = Image.new("RGB", (64, 64))
    names = ["a", "b", "c"]
    out = plotting.draw_detections(image, np.array([[5, 5, 30, 30], [35, 35, 60, 60]]), names, None, [2, 7])
    assert out.getpixel((5, 20)) == plotting.colour(2)
    assert out.getpixel((60, 45)) == plotting.colour(7)
    blank = plotting.draw_detections(image, np.zeros((0, 4)), [], None, [])
    assert np.array_equal(np.asarray(blank), np.asarray(image))
    with pytest.raises(ValueError):
        plotting.draw_detections(image, np.zeros((1, 4)), ["a"], None, [])


def _colour_mask(path, col, tolerance=40) -> np.ndarray:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    return np.abs(rgb - np.array(col)).sum(-1) < tolerance


def test_nan_leaves_a_gap_of_the_right_width_in_a_level_line(tmp_path):
    # y = 0.5 at x = 0, 1, (NaN at 2), 3, 4: segments 0..1 and 3..4, nothing over 1..3
    out = plotting.line_chart(tmp_path / "gap.png", {"": (range(5), [0.5, 0.5, math.nan, 0.5, 0.5])},
                              "t", "x", "y", xlim=(0, 4), ylim=(0, 1))
    mask = _colour_mask(out, plotting.PALETTE[0])
    columns = np.where(mask.any(0))[0]
    rows = np.where(mask.any(1))[0]
    assert rows.max() - rows.min() <= 4  # level: one line a few pixels thick
    runs = np.split(columns, np.where(np.diff(columns) > 1)[0] + 1)
    assert len(runs) == 2
    span = columns.max() - columns.min()
    gap = runs[1].min() - runs[0].max()
    assert gap / span == pytest.approx(0.5, abs=0.03)  # x 1..3 of 0..4
    assert (runs[0].max() - runs[0].min()) / span == pytest.approx(0.25, abs=0.03)


def test_scatter_places_points_in_proportion(tmp_path):
    # highlight diamonds at x = 2, 3, 5 on one level (axes 0..10 from the dots at the corners):
    # their centres keep the spacing 1 : 2
    out = plotting.scatter_chart(tmp_path / "s.png", {"boxes": ([0.0, 10.0], [0.0, 10.0])}, "t", "w", "h",
                                 highlight={"anchors": ([2.0, 3.0, 5.0], [5.0, 5.0, 5.0])})
    mask = _colour_mask(out, plotting.PALETTE[1], tolerance=60)
    columns = np.where(mask.any(0))[0]
    runs = np.split(columns, np.where(np.diff(columns) > 1)[0] + 1)
    assert len(runs) == 4  # the three points, then the legend's key at the right edge
    centres = [r.mean() for r in runs[:3]]
    assert (centres[2] - centres[1]) / (centres[1] - centres[0]) == pytest.approx(2.0, rel=0.05)


def test_multi_line_grid_draws_each_panel_in_its_cell(tmp_path):
    panels = [(f"class {i}", {"pr": ([0, 1], [0.5, 0.5])}) for i in range(5)]
    out = plotting.multi_line_grid(tmp_path / "g.png", panels, "recall", cols=3, xlim=(0, 1), ylim=(0, 1))
    with Image.open(out) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    mask = rgb[..., 2] - rgb[..., 0] > 40  # bluish: the thin first-palette line after downsampling
    cells = [[mask[r * 250:(r + 1) * 250, c * 340:(c + 1) * 340].sum() for c in range(3)] for r in range(2)]
    assert all(n > 50 for n in cells[0]) and cells[1][0] > 50 and cells[1][1] > 50
    assert cells[1][2] == 0  # the sixth cell is empty
