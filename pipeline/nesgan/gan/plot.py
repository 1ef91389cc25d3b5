"""`metrics.png`: the run's quality numbers over steps, drawn with Pillow (no plotting library).

One small panel per number: the run's values as a line with dots, the training screens' own
value as a dashed line, the latest value in the title. Enough to see at a glance whether
training helps; `metrics.jsonl` holds the exact numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

PANEL_W, PANEL_H, COLS = 300, 170, 3
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 44, 10, 24, 22
INK, GRID, LINE, TRAIN = (30, 30, 30), (225, 225, 225), (200, 40, 40), (40, 110, 200)


@dataclass(frozen=True)
class Panel:
    key: str  # metrics.jsonl field of the run's value
    title: str
    train_key: str | None = None  # field of the training screens' value
    scale: float = 1.0  # shown value = stored value × scale (e.g. 100 for percent)
    fmt: str = "{:.1f}"


PANELS = (
    Panel("swd", "SWD (lower is better)"),
    Panel("orphan", "orphan pixels %", "orphan_train", 100.0, "{:.1f}"),
    Panel("tile_share", "distinct tiles %", "tile_share_train", 100.0, "{:.0f}"),
    Panel("colours_per_cell", "colours per cell (median)", "colours_per_cell_train", 1.0, "{:.0f}"),
    Panel("diversity", "diversity (training = 1)", "diversity_train", 1.0, "{:.2f}"),
    Panel("coverage", "mode coverage %", "coverage_train", 100.0, "{:.0f}"),
    Panel("invented", "invented patterns % of cells", "invented_train", 100.0, "{:.1f}"),
    Panel("divergence", "tile-pattern divergence", "divergence_train", 1.0, "{:.3f}"),
)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size)  # Pillow ≥ 10.1: a scalable built-in font
    except TypeError:
        return ImageFont.load_default()


def _nice_range(values: list[float], top: float | None) -> tuple[float, float]:
    """The values' range padded by 8 %, never below 0 (every number here is ≥ 0) nor above
    `top` (100 for percentages)."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 if hi - lo >= 1e-9 else (abs(hi) * 0.1 or 1.0)
    lo, hi = max(0.0, lo - pad), hi + pad
    return lo, hi if top is None else min(top, max(hi, lo + 1e-6))


def _draw_panel(draw: ImageDraw.ImageDraw, x0: int, y0: int, panel: Panel,
                rows: list[dict], font, small) -> None:
    points = [(r["step"], r[panel.key] * panel.scale) for r in rows if r.get(panel.key) is not None]
    train = next((r[panel.train_key] * panel.scale for r in reversed(rows)
                  if panel.train_key and r.get(panel.train_key) is not None), None)
    latest = panel.fmt.format(points[-1][1]) if points else "n/a"
    title = f"{panel.title}: {latest}"
    if train is not None:
        title += f" (train {panel.fmt.format(train)})"
    draw.text((x0 + 6, y0 + 4), title, fill=INK, font=font)
    left, top = x0 + MARGIN_L, y0 + MARGIN_T
    right, bottom = x0 + PANEL_W - MARGIN_R, y0 + PANEL_H - MARGIN_B
    draw.rectangle([left, top, right, bottom], outline=INK)
    if not points:
        return
    lo, hi = _nice_range([v for _, v in points] + ([train] if train is not None else []),
                         100.0 if panel.scale == 100.0 else None)
    s_lo, s_hi = min(s for s, _ in points), max(s for s, _ in points)
    s_hi = s_hi if s_hi > s_lo else s_lo + 1

    def xy(step: float, v: float) -> tuple[float, float]:
        return (left + (step - s_lo) / (s_hi - s_lo) * (right - left),
                bottom - (v - lo) / (hi - lo) * (bottom - top))

    for frac in (0.25, 0.5, 0.75):
        y = bottom - frac * (bottom - top)
        draw.line([left + 1, y, right - 1, y], fill=GRID)
    for v, anchor_y in ((hi, top), (lo, bottom)):
        draw.text((left - 4, anchor_y), panel.fmt.format(v), fill=INK, font=small, anchor="rm")
    draw.text((left, bottom + 4), str(int(s_lo)), fill=INK, font=small, anchor="la")
    draw.text((right, bottom + 4), f"step {int(s_hi)}", fill=INK, font=small, anchor="ra")
    if train is not None:
        y = xy(s_lo, train)[1]
        for x in range(left, right, 8):
            draw.line([x, y, min(x + 4, right), y], fill=TRAIN, width=2)
    line = [xy(s, v) for s, v in points]
    if len(line) > 1:
        draw.line(line, fill=LINE, width=2)
    for x, y in line:
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=LINE)


def metrics_image(rows: list[dict], panels: tuple[Panel, ...] = PANELS) -> Image.Image:
    """The panels for metrics.jsonl `rows` (rows without a value are skipped per panel)."""
    n_rows = -(-len(panels) // COLS)
    img = Image.new("RGB", (COLS * PANEL_W, n_rows * PANEL_H), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(12), _font(10)
    for i, panel in enumerate(panels):
        r, c = divmod(i, COLS)
        _draw_panel(draw, c * PANEL_W, r * PANEL_H, panel, rows, font, small)
    return img
