"""Charts and detection drawings with Pillow only (no matplotlib).

Every chart function writes one PNG atomically and returns its path. Charts are
drawn at twice their size and downsampled, which gives smooth lines and text.
Non-finite values (NaN, inf) are skipped; a chart with no data still draws its
axes and says "no data".
"""

from __future__ import annotations

import colorsys
import functools
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vocli.paths import atomic_path

Series = dict  # name -> (xs, ys)

#: Distinct colours that stay readable on white and as box outlines on photos.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (0, 0, 128), (230, 159, 0), (0, 128, 128), (128, 0, 0), (86, 180, 233),
    (0, 158, 115), (204, 121, 167), (70, 70, 70), (160, 160, 0), (255, 80, 160),
)

_SS = 2  # supersampling factor
_INK = (40, 40, 40)
_GRID = (228, 228, 228)
_MUTED = (110, 110, 110)


def colour(index: int) -> tuple[int, int, int]:
    """The palette colour for ``index``; beyond the palette, hues spaced by the golden ratio."""
    if index < len(PALETTE):
        return PALETTE[index]
    hue = (index * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


@functools.lru_cache(maxsize=32)
def font(size: int) -> ImageFont.ImageFont:
    """A scalable font of ``size`` px (Pillow's bundled one, else DejaVu, else the bitmap default)."""
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError, AttributeError):
        pass
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, fnt) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=fnt)
    return right - left, bottom - top


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) from <= lo to >= hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(target - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)
    first = math.floor(lo / step + 1e-9) * step
    count = math.ceil(hi / step - 1e-9) - math.floor(lo / step + 1e-9)
    return [0.0 if abs(first + k * step) < step * 1e-9 else first + k * step for k in range(count + 1)]


def _tick_label(value: float, step: float) -> str:
    if abs(value) >= 1e5 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.2g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if step > 0 and decimals == 0 and abs(step - round(step)) > 1e-9:
        decimals = 1
    return f"{value:.{min(decimals, 4)}f}"


def _finite_pairs(xs, ys) -> tuple[np.ndarray, np.ndarray]:
    """(n,), (n,) float arrays with every pair that has a non-finite member dropped."""
    x = np.asarray(list(xs), dtype=np.float64).reshape(-1)
    y = np.asarray(list(ys), dtype=np.float64).reshape(-1)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _range(values: list[np.ndarray], limit, pad_zero: bool = False) -> tuple[float, float]:
    if limit is not None:
        lo, hi = float(limit[0]), float(limit[1])
    else:
        flat = np.concatenate(values) if values else np.zeros(0)
        if flat.size == 0:
            return 0.0, 1.0
        lo, hi = float(flat.min()), float(flat.max())
        if pad_zero:
            lo = min(lo, 0.0)
    if hi <= lo:
        span = abs(lo) * 0.1 or 1.0
        lo, hi = lo - span, hi + span
    return lo, hi


class _Axes:
    """A plot area inside a canvas: maps data to pixels and draws the frame, ticks and labels."""

    def __init__(self, draw, box, xr, yr, font_px: int, x_ticks=True):
        self.draw = draw
        self.x0, self.y0, self.x1, self.y1 = box
        self.xt = nice_ticks(*xr)
        self.yt = nice_ticks(*yr)
        # Extend the range to the outer ticks so the data sits inside a labelled frame.
        self.xlo, self.xhi = min([xr[0]] + self.xt), max([xr[1]] + self.xt)
        self.ylo, self.yhi = min([yr[0]] + self.yt), max([yr[1]] + self.yt)
        self.font = font(font_px)
        self.x_ticks = x_ticks

    def px(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        sx = (self.x1 - self.x0) / (self.xhi - self.xlo)
        sy = (self.y1 - self.y0) / (self.yhi - self.ylo)
        return self.x0 + (x - self.xlo) * sx, self.y1 - (y - self.ylo) * sy

    def frame(self) -> None:
        d, f = self.draw, self.font
        ystep = self.yt[1] - self.yt[0] if len(self.yt) > 1 else 1.0
        for t in self.yt:
            _, py = self.px(self.xlo, t)
            py = float(py)
            d.line([(self.x0, py), (self.x1, py)], fill=_GRID, width=_SS)
            label = _tick_label(t, ystep)
            w, h = _text_size(d, label, f)
            d.text((self.x0 - 6 * _SS - w, py), label, fill=_INK, font=f, anchor="lm")
        if self.x_ticks:
            xstep = self.xt[1] - self.xt[0] if len(self.xt) > 1 else 1.0
            for t in self.xt:
                px, _ = self.px(t, self.ylo)
                px = float(px)
                d.line([(px, self.y0), (px, self.y1)], fill=_GRID, width=_SS)
                d.line([(px, self.y1), (px, self.y1 + 4 * _SS)], fill=_INK, width=_SS)
                d.text((px, self.y1 + 6 * _SS), _tick_label(t, xstep), fill=_INK, font=f, anchor="mt")
        d.rectangle([self.x0, self.y0, self.x1, self.y1], outline=_INK, width=_SS)

    def y_label_width(self) -> int:
        ystep = self.yt[1] - self.yt[0] if len(self.yt) > 1 else 1.0
        return max((_text_size(self.draw, _tick_label(t, ystep), self.font)[0] for t in self.yt), default=0)


def _canvas(width: int, height: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (width * _SS, height * _SS), "white")
    return image, ImageDraw.Draw(image)


def _save(image: Image.Image, path, size: tuple[int, int]) -> Path:
    path = Path(path)
    small = image.resize(size, Image.LANCZOS)
    with atomic_path(path, suffix=".png") as tmp:
        small.save(tmp, format="PNG", optimize=False)
    return path


def _vertical_text(image: Image.Image, xy, text: str, fnt, fill=_INK) -> None:
    """Draw ``text`` rotated 90 degrees counter-clockwise, centred at ``xy``."""
    probe = ImageDraw.Draw(image)
    w, h = _text_size(probe, text, fnt)
    tile = Image.new("L", (w + 4, h + 8), 0)
    ImageDraw.Draw(tile).text((2, 2), text, fill=255, font=fnt, anchor="lt")
    tile = tile.rotate(90, expand=True)
    x, y = int(xy[0] - tile.width / 2), int(xy[1] - tile.height / 2)
    image.paste(Image.new("RGB", tile.size, fill), (x, y), tile)


def _layout(image, draw, xr, yr, title, xlabel, ylabel, box, font_px=13, x_ticks=True, right_pad=0):
    """Place title, axis labels and the plot area inside ``box`` (canvas pixels); return the axes.

    ``right_pad`` (canvas pixels) keeps a column free on the right, e.g. for an outside legend.
    """
    bx0, by0, bx1, by1 = box
    title_f, label_f = font((font_px + 3) * _SS), font(font_px * _SS)
    probe = _Axes(draw, (0, 0, 1, 1), xr, yr, font_px * _SS)
    left = bx0 + probe.y_label_width() + (14 + (font_px + 6 if ylabel else 0)) * _SS
    top = by0 + ((font_px + 14) * _SS if title else 8 * _SS)
    bottom = by1 - ((font_px * 2 + 18) * _SS if xlabel else (font_px + 14) * _SS)
    right = bx1 - 16 * _SS - right_pad
    axes = _Axes(draw, (left, top, right, bottom), xr, yr, font_px * _SS, x_ticks=x_ticks)
    if title:
        draw.text(((left + right) / 2, by0 + 6 * _SS), title, fill=_INK, font=title_f, anchor="mt")
    if xlabel:
        draw.text(((left + right) / 2, by1 - 6 * _SS), xlabel, fill=_INK, font=label_f, anchor="mb")
    if ylabel:
        _vertical_text(image, (bx0 + (font_px // 2 + 6) * _SS, (top + bottom) / 2), ylabel, label_f)
    axes.frame()
    return axes


def _legend_width(draw, names: Sequence[str], font_px=12) -> int:
    f = font(font_px * _SS)
    return 22 * _SS + max((_text_size(draw, n, f)[0] for n in names), default=0) + 20 * _SS


def _legend(draw, axes: _Axes, entries: list[tuple[str, tuple[int, int, int], str]], font_px=12,
            outside: bool = False) -> None:
    """Legend box in the plot's top-right corner, or right of the plot when ``outside``.

    entries: (name, colour, "line" | "dot" | "big").
    """
    if not entries:
        return
    f = font(font_px * _SS)
    row = (font_px + 8) * _SS
    swatch = 22 * _SS
    w = _legend_width(draw, [name for name, _, _ in entries], font_px)
    h = row * len(entries) + 8 * _SS
    if outside:
        x0, y0 = axes.x1 + 10 * _SS, axes.y0
        x1 = x0 + w
    else:
        x1, y0 = axes.x1 - 8 * _SS, axes.y0 + 8 * _SS
        x0 = x1 - w
    draw.rectangle([x0, y0, x1, y0 + h], fill=(255, 255, 255), outline=(190, 190, 190), width=_SS)
    for i, (name, col, kind) in enumerate(entries):
        cy = y0 + 4 * _SS + row * i + row / 2
        sx = x0 + 6 * _SS
        if kind == "line":
            draw.line([(sx, cy), (sx + swatch - 4 * _SS, cy)], fill=col, width=3 * _SS)
        else:
            r = (5 if kind == "big" else 4) * _SS
            mx = sx + swatch / 2 - 2 * _SS
            _marker(draw, mx, cy, r, col, big=kind == "big")
        draw.text((sx + swatch + 4 * _SS, cy), name, fill=_INK, font=f, anchor="lm")


def _marker(draw, x, y, r, col, big=False) -> None:
    if big:  # diamond with a dark outline, stands out over a dot cloud
        draw.polygon([(x, y - r * 1.4), (x + r * 1.4, y), (x, y + r * 1.4), (x - r * 1.4, y)],
                     fill=col, outline=_INK, width=_SS)
    else:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=col)


def _no_data(draw, axes: _Axes) -> None:
    draw.text(((axes.x0 + axes.x1) / 2, (axes.y0 + axes.y1) / 2), "no data", fill=_MUTED,
              font=font(16 * _SS), anchor="mm")


def _draw_lines(draw, axes: _Axes, series: dict, width: int = 2) -> list:
    """Polylines per series, broken at non-finite points; returns legend entries."""
    entries = []
    any_data = False
    for i, (name, (xs, ys)) in enumerate(series.items()):
        col = colour(i)
        x = np.asarray(list(xs), dtype=np.float64).reshape(-1)
        y = np.asarray(list(ys), dtype=np.float64).reshape(-1)
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        ok = np.isfinite(x) & np.isfinite(y)
        px, py = axes.px(np.where(ok, x, 0), np.where(ok, y, 0))
        run: list[tuple[float, float]] = []
        for j in range(n + 1):
            if j < n and ok[j]:
                run.append((float(px[j]), float(py[j])))
                continue
            if len(run) >= 2:
                draw.line(run, fill=col, width=width * _SS, joint="curve")
            elif len(run) == 1:
                _marker(draw, run[0][0], run[0][1], 2 * _SS, col)
            any_data |= bool(run)
            run = []
        entries.append((str(name), col, "line"))
    if not any_data:
        _no_data(draw, axes)
    return entries


def line_chart(path, series: dict, title: str, xlabel: str, ylabel: str,
               xlim=None, ylim=None, size: tuple[int, int] = (800, 500)) -> Path:
    """Lines, one per ``series`` entry ``name -> (xs, ys)``; NaN points break the line."""
    pairs = [_finite_pairs(xs, ys) for xs, ys in series.values()]
    xr = _range([p[0] for p in pairs], xlim)
    yr = _range([p[1] for p in pairs], ylim)
    image, draw = _canvas(*size)
    outside = len(series) > 6
    pad = _legend_width(draw, [str(n) for n in series]) + 6 * _SS if outside else 0
    axes = _layout(image, draw, xr, yr, title, xlabel, ylabel, (0, 0, size[0] * _SS, size[1] * _SS), right_pad=pad)
    entries = _draw_lines(draw, axes, series)
    if len(entries) > 1 or (entries and entries[0][0]):
        _legend(draw, axes, entries, outside=outside)
    return _save(image, path, size)


def bar_chart(path, labels: Sequence[str], values: Sequence[float], title: str, ylabel: str,
              size: tuple[int, int] = (800, 500)) -> Path:
    """One bar per label with its value written above; long label rows are drawn rotated."""
    labels = [str(s) for s in labels]
    vals = np.asarray(list(values), dtype=np.float64).reshape(-1)[: len(labels)]
    finite = vals[np.isfinite(vals)]
    yr = _range([np.append(finite, 0.0)], None, pad_zero=True)
    if finite.size:  # headroom for the value labels
        yr = (yr[0], yr[1] + 0.08 * (yr[1] - yr[0]))
    image, draw = _canvas(*size)
    label_f = font(12 * _SS)
    n = max(len(labels), 1)
    widest = max((_text_size(draw, s, label_f)[0] for s in labels), default=0)
    slot_guess = (size[0] - 120) * _SS / n
    rotate = widest > slot_guess * 0.9
    label_band = (widest + 14 * _SS) if rotate else 24 * _SS
    box = (0, 0, size[0] * _SS, size[1] * _SS - label_band + 20 * _SS)
    axes = _layout(image, draw, (0.0, float(n)), yr, title, "", ylabel, box, x_ticks=False)
    axes.xlo, axes.xhi = 0.0, float(n)
    slot = (axes.x1 - axes.x0) / n
    value_f = font(11 * _SS)
    for i, (name, v) in enumerate(zip(labels, vals)):
        cx = axes.x0 + slot * (i + 0.5)
        if math.isfinite(v):
            _, top = axes.px(0, v)
            _, base = axes.px(0, 0.0)
            y_top, y_base = sorted((float(top), float(base)))
            draw.rectangle([cx - slot * 0.36, y_top, cx + slot * 0.36, y_base], fill=colour(i % len(PALETTE)))
            text = f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
            if _text_size(draw, text, value_f)[0] < slot * 1.1:
                draw.text((cx, y_top - 3 * _SS), text, fill=_INK, font=value_f, anchor="mb")
        if rotate:
            w, _ = _text_size(draw, name, label_f)
            _vertical_text(image, (cx, axes.y1 + 8 * _SS + w / 2), name, label_f)
        else:
            draw.text((cx, axes.y1 + 6 * _SS), name, fill=_INK, font=label_f, anchor="mt")
    if not labels or finite.size == 0:
        _no_data(draw, axes)
    return _save(image, path, size)


def scatter_chart(path, groups: dict, title: str, xlabel: str, ylabel: str,
                  highlight: Optional[dict] = None, size: tuple[int, int] = (800, 600)) -> Path:
    """Dots per group ``name -> (xs, ys)`` (semi-transparent); ``highlight`` groups as large diamonds."""
    highlight = highlight or {}
    pairs = [_finite_pairs(xs, ys) for xs, ys in groups.values()]
    hpairs = [_finite_pairs(xs, ys) for xs, ys in highlight.values()]
    xr = _range([p[0] for p in pairs + hpairs], None)
    yr = _range([p[1] for p in pairs + hpairs], None)
    image, draw = _canvas(*size)
    names = [str(n) for n in list(groups) + list(highlight)]
    outside = len(names) > 6
    pad = _legend_width(draw, names) + 6 * _SS if outside else 0
    axes = _layout(image, draw, xr, yr, title, xlabel, ylabel, (0, 0, size[0] * _SS, size[1] * _SS), right_pad=pad)
    total = sum(len(p[0]) for p in pairs)
    radius = (3 if total < 2000 else 2) * _SS
    alpha = 200 if total < 2000 else 110
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    layer_draw = ImageDraw.Draw(layer)
    entries = []
    for i, (name, (x, y)) in enumerate(zip(groups, pairs)):
        col = colour(i)
        px, py = axes.px(x, y)
        for a, b in zip(px.tolist(), py.tolist()):
            layer_draw.ellipse([a - radius, b - radius, a + radius, b + radius], fill=col + (alpha,))
        entries.append((str(name), col, "dot"))
    image.paste(layer, (0, 0), layer)
    draw = ImageDraw.Draw(image)
    for j, (name, (x, y)) in enumerate(zip(highlight, hpairs)):
        col = colour(len(groups) + j)
        px, py = axes.px(x, y)
        for a, b in zip(px.tolist(), py.tolist()):
            _marker(draw, a, b, 6 * _SS, col, big=True)
        entries.append((str(name), col, "big"))
    if total + sum(len(p[0]) for p in hpairs) == 0:
        _no_data(draw, axes)
    _legend(draw, axes, entries, outside=outside)
    return _save(image, path, size)


def multi_line_grid(path, panels: list, xlabel: str, cols: int = 3,
                    panel_size: tuple[int, int] = (340, 250), xlim=None, ylim=None) -> Path:
    """Small multiples: ``panels`` is a list of ``(title, {name: (xs, ys)})``, one chart each.

    ``xlim``/``ylim`` fix every panel's range, e.g. ``(0, 1)`` for PR curves.
    """
    cols = max(1, min(int(cols), max(len(panels), 1)))
    rows = max(1, math.ceil(len(panels) / cols))
    size = (panel_size[0] * cols, panel_size[1] * rows)
    image, draw = _canvas(*size)
    pw, ph = panel_size[0] * _SS, panel_size[1] * _SS
    for k, (title, series) in enumerate(panels):
        r, c = divmod(k, cols)
        pairs = [_finite_pairs(xs, ys) for xs, ys in series.values()]
        xr = _range([p[0] for p in pairs], xlim)
        yr = _range([p[1] for p in pairs], ylim)
        box = (c * pw, r * ph, (c + 1) * pw, (r + 1) * ph)
        axes = _layout(image, draw, xr, yr, str(title), xlabel, "", box, font_px=10)
        entries = _draw_lines(draw, axes, series, width=2)
        if len(entries) > 1:
            _legend(draw, axes, entries, font_px=9)
    if not panels:
        draw.text((size[0] * _SS / 2, size[1] * _SS / 2), "no data", fill=_MUTED, font=font(16 * _SS), anchor="mm")
    return _save(image, path, size)


def _text_colour(col: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * col[0] + 0.587 * col[1] + 0.114 * col[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def draw_detections(image: Image.Image, boxes, labels: Sequence[str], scores: Optional[Sequence[float]],
                    class_ids: Sequence[int]) -> Image.Image:
    """A copy of ``image`` with each box outlined in its class colour and labelled.

    boxes: (N, 4) xyxy, 0-based pixels. ``labels`` is the class-name list,
    indexed by ``class_ids`` (N,) (an id outside it is shown as the number).
    ``scores`` (N,) (optional) are appended as ``name 0.87``.
    """
    out = image.convert("RGB").copy()
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ids = [int(i) for i in class_ids]
    if len(ids) != len(b):
        raise ValueError(f"draw_detections: {len(b)} boxes but {len(ids)} class ids")
    draw = ImageDraw.Draw(out)
    short = min(out.size)
    fnt = font(max(11, min(22, short // 32)))
    line = max(2, short // 200)
    for i, (x1, y1, x2, y2) in enumerate(b.tolist()):
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            continue
        col = colour(ids[i])
        name = labels[ids[i]] if 0 <= ids[i] < len(labels) else str(ids[i])
        text = f"{name} {float(scores[i]):.2f}" if scores is not None else str(name)
        draw.rectangle([x1, y1, x2, y2], outline=col, width=line)
        tw, th = _text_size(draw, text, fnt)
        tx = min(max(x1, 0), max(out.width - tw - 6, 0))
        ty = y1 - th - 6 if y1 - th - 6 >= 0 else y1 + line
        draw.rectangle([tx, ty, tx + tw + 6, ty + th + 6], fill=col)
        draw.text((tx + 3, ty + 3), text, fill=_text_colour(col), font=fnt, anchor="lt")
    return out


__all__ = ["PALETTE", "colour", "font", "nice_ticks", "line_chart", "bar_chart", "scatter_chart",
           "multi_line_grid", "draw_detections"]
