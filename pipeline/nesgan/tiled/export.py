"""The export-tiles stage: tiles from `nesgan.tiles.build`, then Tiled tilesets and (optionally) a map.

Writes `TILESETS/NAME.tsx` + `NAME.png` (tiles judged original), `NAME-near-copies.tsx` + `.png`
(tiles within K pixels of a training tile), `NAME.ids.jsonl` (a row per tile of tiles.jsonl: the
tileset and tile id it went to, `new` or `kept`), and with `--tmx` a map whose layer `NAME`
rebuilds every generated screen (screen i at tile columns 14·i … 14·i+13) plus `PATH.png`, a
preview rendered from the tiles.

Tile ids are stable: each export matches tiles by their RGB pixels against the existing atlases
and only appends new ones, and `columns` never changes, so maps painted earlier stay correct.
A tile whose verdict changes between exports (a new K, more training data) is never moved or
removed, since painted maps point at it: it stays at its id, its properties get the new verdict,
and it is appended to the tileset it now belongs to, which the generated layer then uses. A tile
of `NAME.tsx` now judged a near-copy also gets `probability="0"`, so Tiled's random and terrain
brushes never pick it.

Order of writes: the map update is planned in memory first (every refusal happens there), then
the atlases (PNG before TSX), the map and its preview, each atomically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nesgan.errors import NesganError
from nesgan.files import atomic_write_bytes, atomic_write_text, write_jsonl
from nesgan.images import TILE, encode_png
from nesgan.tiled.merge import MapUpdate, OwnTileset, plan_map_update
from nesgan.tiled.tmx import Atlas, read_atlas, write_atlas

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class ExportConfig:
    generated: Path = Path("data/generated")  # the generated 224×224 screens
    train: Path | tuple[Path, ...] = Path("data/screens")  # training screens folder(s), for the near-copy check
    tilesets_dir: Path = Path("tilesets")  # the default output folder for TSX + PNG
    tiles_dir: Path = Path("tiles")  # tiles.jsonl and contact sheets (written by nesgan.tiles.build)
    name: str = "nesgan"  # tileset name, file stem and the map layer's name
    tmx: Path | None = None  # also write or update this map
    near_copy_pixels: int | None = None  # None: nesgan.tiles.build's own default (K = 4)
    palette_file: Path | None = None  # a .pal file instead of the built-in NES palette
    columns: int = 16  # atlas width for a NEW tileset (256 px); an existing one keeps its own
    max_tiles: int = 256  # the sheet's budget (nesgan.tiles.sheet); 0 = every distinct tile as quantized
    palettes: int | None = None  # cap on shared sub-palettes (4 = one NES palette set)
    under_sprites: bool = False  # also flag training tiles with a sprite over them (opt-in)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise NesganError(
                f"--name {self.name!r} must be 1–64 letters, digits, '-' or '_', starting with a "
                "letter or digit (it names files)")
        if self.columns < 1:
            raise NesganError(f"columns must be at least 1, got {self.columns}")
        if self.tmx is not None and Path(self.tmx).suffix.lower() in (".tmj", ".json"):
            raise NesganError(
                f"--tmx {self.tmx} is a JSON map; nesgan reads and writes Tiled's XML format: in "
                "Tiled, File → Save As… a .tmx and pass that")
        from nesgan.tiles.sheet import check_budget

        check_budget(self.max_tiles, self.palettes)

    @property
    def near_name(self) -> str:
        return f"{self.name}-near-copies"


@dataclass
class ExportReport:
    tiles: int  # unique tiles in this export
    near_copies: int  # of which flagged as near-copies
    new_tiles: dict[str, int]  # tileset name -> tiles appended by this export
    changed_verdict: int  # tiles already exported to the other tileset
    flagged_in_main: int = 0  # tiles of the main tileset now flagged (kept for their ids)
    tilesets: list[Path] = field(default_factory=list)
    map: MapUpdate | None = None
    preview: Path | None = None
    manifest: Path | None = None  # NAME.ids.jsonl: tiles.jsonl id -> tileset and tile id
    name: str = "nesgan"
    sheet: dict | None = None  # the tile sheet's numbers (None with --max-tiles 0)
    differing_share: float = 0.0  # pixels the rebuilt map shows differently from the quantized screens
    worst_screen: tuple[str, float] | None = None  # the screen with the largest such share
    orphan_quantized: float = 0.0  # lone-pixel rate of the quantized screens
    orphan_rebuilt: float = 0.0  # … of the map rebuilt from the tiles
    rebuild_picture: Path | None = None
    drawing: dict | None = None  # `drawing_numbers`: the rebuilt map's patterns against --train

    def summary_lines(self) -> list[str]:
        """What export-tiles prints: tiles, palettes, how faithful the map is, where things went."""
        new = ", ".join(f"{n} +{k}" for n, k in self.new_tiles.items())
        if self.sheet is None:
            lines = [f"{self.tiles} unique tiles, {self.near_copies} near-copies ({new} new)"]
        else:
            s = self.sheet
            pals = (f"one backdrop ${s['backdrop']:02X} + {s['subpalettes']} sub-palette(s)"
                    if s["backdrop"] is not None else f"{s['subpalettes']} colour sets")
            fitted = s.get("fitted")
            budget = (f"budget {s['max_tiles']}" if fitted in (None, s["max_tiles"]) else
                      f"budget {s['max_tiles']}, lowered to {fitted} to fit one NES pattern table")
            lines = [f"{self.tiles} tiles ({budget}, from {s['cells']} cells), "
                     f"{self.near_copies} near-copies ({new} new)",
                     f"colours: ≤ {s['max_colours']} per tile, {pals}"
                     + (f"; {s['patterns_8x8']} distinct 8×8 patterns (an NES pattern table holds 256)"
                        if s["backdrop"] is not None else "")]
        lines.append(f"rebuilt map vs quantized screens: {100 * self.differing_share:.1f} % of pixels differ"
                     + (f" (most: {self.worst_screen[0]}, {100 * self.worst_screen[1]:.1f} %)"
                        if self.worst_screen and self.sheet is not None else "")
                     + f"; lone pixels {100 * self.orphan_rebuilt:.2f} % (quantized {100 * self.orphan_quantized:.1f} %)"
                     + (f"; see {self.rebuild_picture}" if self.rebuild_picture else ""))
        if self.drawing is not None:
            d = self.drawing
            lines.append(f"drawing: invented patterns in {100 * d['invented']:.1f} % of the rebuilt map's cells "
                         f"(training {100 * d['invented_train']:.1f} %), tile-pattern divergence "
                         f"{d['divergence']:.3f} (training {d['divergence_train']:.3f}); "
                         f"{d['non_flat_original']} non-flat original tiles, median {d['median_colours']:g} "
                         f"colours, near-copies {100 * d['near_copy_share']:.0f} % of non-flat tiles")
        if self.changed_verdict:
            lines.append(f"{self.changed_verdict} tile(s) changed verdict since an earlier export: each keeps "
                         "its id where it was (its near_copy property shows the new verdict) and is also "
                         "in the other tileset")
        if self.flagged_in_main:
            lines.append(f"note: {self.flagged_in_main} tile(s) of {self.name}.tsx are now near-copies; they "
                         "stay (maps that use them keep working), marked near_copy=true with probability 0")
        lines.append("tilesets: " + ", ".join(str(p) for p in self.tilesets) + f" (ids: {self.manifest})")
        if self.map is not None:
            m = self.map
            lines.append(f"map: {m.path} ({'new' if m.created else 'updated'}, {m.size[0]}×{m.size[1]} "
                         f"tiles), preview {self.preview}")
            if m.grown_from:
                lines.append(f"  grew from {m.grown_from[0]}×{m.grown_from[1]}; re-encoded layers: "
                             + ", ".join(m.rewritten_layers))
            elif m.rewritten_layers:
                lines.append("  renumbered nesgan tiles in layers: " + ", ".join(m.rewritten_layers))
        return lines


def export_tiles(config: ExportConfig) -> ExportReport:
    """Run `nesgan.tiles.build.build_tiles` on the generated screens, then export its tiles."""
    from nesgan.tiles.build import TileConfig, build_tiles

    kwargs = {"generated": config.generated, "train": config.train,
              "tiles_dir": config.tiles_dir, "palette_file": config.palette_file,
              "max_tiles": config.max_tiles, "palettes": config.palettes,
              "under_sprites": config.under_sprites}
    if config.near_copy_pixels is not None:
        kwargs["near_copy_pixels"] = config.near_copy_pixels
    return export_report(build_tiles(TileConfig(**kwargs)), config)


def _properties(row: dict) -> dict[str, object]:
    props: dict[str, object] = {"count": int(row["count"]), "near_copy": bool(row["near_copy"])}
    nearest = row.get("nearest") or {}
    if nearest.get("screen") is not None:
        props["nearest_source"] = f"{nearest['screen']}@{int(nearest['x'])},{int(nearest['y'])}"
    if nearest.get("distance") is not None:
        d = nearest["distance"]
        props["distance"] = int(d) if float(d).is_integer() else float(d)
    return props


def export_report(report, config: ExportConfig) -> ExportReport:
    """Export a `nesgan.tiles.build.TileReport` (tiles, rows, screens, palette) as tilesets and map."""
    tiles = np.asarray(report.tiles)
    if tiles.ndim != 3 or tiles.shape[1:] != (TILE, TILE) or len(tiles) == 0:
        raise NesganError(f"no tiles to export from {config.generated}: generate screens first "
                          "(`nesgan generate`)")
    rgb = report.palette.to_rgb(tiles)  # (N, 16, 16, 3) uint8
    main_tsx = config.tilesets_dir / f"{config.name}.tsx"
    near_tsx = config.tilesets_dir / f"{config.near_name}.tsx"
    atlases = [read_atlas(main_tsx, config.name, config.columns),
               read_atlas(near_tsx, config.near_name, config.columns)]
    index = [{t.tobytes(): i for i, t in reversed(list(enumerate(a.tiles)))} for a in atlases]
    before = [a.tilecount for a in atlases]

    placement = np.zeros((len(tiles), 2), np.int64)  # per report tile: (atlas 0|1, local id)
    changed = 0
    manifest = []  # a row per exported tile: where it went and whether it is new
    for i, row in enumerate(report.rows):
        key = rgb[i].tobytes()
        props = _properties(row)
        home = 1 if props["near_copy"] else 0
        also = None
        if key in index[1 - home]:
            also = index[1 - home][key]
            atlases[1 - home].props[also] = props
            changed += also < before[1 - home]
        local = index[home].get(key)
        status = "kept" if local is not None and local < before[home] else "new"
        if local is None:
            local = index[home][key] = atlases[home].append(rgb[i])
        atlases[home].props[local] = props
        placement[i] = home, local
        manifest.append({"id": int(row["id"]), "key": row.get("key"), "tileset": atlases[home].name,
                         "tile": int(local), "status": status, "error": None,
                         "also_in": None if also is None else
                         {"tileset": atlases[1 - home].name, "tile": int(also)}})

    result = ExportReport(len(tiles), int(placement[:, 0].sum()),
                          {a.name: a.tilecount - b for a, b in zip(atlases, before, strict=True)},
                          changed)
    zero = {k for k, p in atlases[0].props.items() if p["near_copy"]}
    result.flagged_in_main = len(zero)
    _sheet_numbers(result, report, config)
    result.drawing = drawing_numbers(report, config.train)
    own = [OwnTileset(main_tsx, atlases[0].name, atlases[0].extent)]
    if atlases[1].tilecount:
        own.append(OwnTileset(near_tsx, atlases[1].name, atlases[1].extent))
    if config.tmx is not None:  # plan the map first: a refused merge writes nothing at all
        which, local = _layer(report.screens, placement)
        result.map, map_text = plan_map_update(config.tmx, own, config.name, which, local)

    write_atlas(main_tsx, atlases[0], zero)
    result.tilesets.append(main_tsx)
    if atlases[1].tilecount:
        write_atlas(near_tsx, atlases[1])
        result.tilesets.append(near_tsx)
    if config.tmx is not None:
        atomic_write_text(config.tmx, map_text)
        result.preview = config.tmx.with_suffix(".png")
        atomic_write_bytes(result.preview, _preview_png(which, local, atlases))
    result.manifest = config.tilesets_dir / f"{config.name}.ids.jsonl"
    write_jsonl(result.manifest, manifest)  # the manifest last
    return result


def _sheet_numbers(result: ExportReport, report, config: ExportConfig) -> None:
    """Copy the sheet's and the rebuild's numbers from a TileReport (absent on older reports)."""
    result.name = config.name
    sheet = getattr(report, "sheet", None)
    if sheet is not None:
        from nesgan.tiles.sheet import colours_per_tile

        result.sheet = {"max_tiles": getattr(report, "max_tiles", config.max_tiles),
                        "fitted": getattr(report, "fitted_budget", None),
                        "cells": len(report.screens) * report.screens[0][1].size if report.screens else 0,
                        "backdrop": sheet.backdrop, "subpalettes": len(sheet.subpalettes),
                        "max_colours": int(colours_per_tile(sheet.tiles).max()),
                        "patterns_8x8": sheet.patterns_8x8()}
    differing = list(getattr(report, "differing", []) or [])
    if differing:
        px = report.quantized[0].size
        result.differing_share = sum(differing) / (len(differing) * px)
        worst = int(np.argmax(differing))
        result.worst_screen = (report.screens[worst][0], differing[worst] / px)
    result.orphan_quantized = float(getattr(report, "orphan_quantized", 0.0))
    result.orphan_rebuilt = float(getattr(report, "orphan_rebuilt", 0.0))
    result.rebuild_picture = getattr(report, "rebuild_picture", None)


def drawing_numbers(report, train: Path | tuple[Path, ...]) -> dict | None:
    """How the rebuilt map draws (`nesgan.patterns`) against the training screens in `train`
    (their held-out quarter against the rest beside it), and the sheet's drawings: non-flat
    tiles, their median colour count, the near-copy share among them. None without screens."""
    from nesgan.crop.load import training_reference
    from nesgan.tiles.nearcopy import copy_share
    from nesgan.tiles.tile import rebuild_screens

    if not report.screens:
        return None
    # the sheet's, when it read them; else read here, in the colours the screens were quantized to
    ref = getattr(report, "reference", None) or training_reference(train, getattr(report, "palette", None))
    if ref is None:
        return None
    tiles = np.asarray(report.tiles)
    rebuilt = np.stack(rebuild_screens(tiles, report.screens))
    flat = tiles.reshape(len(tiles), -1)
    colours = np.array([len(np.unique(t)) for t in flat])
    near = np.array([bool(r["near_copy"]) for r in report.rows])
    non_flat = colours > 1
    floor = ref.floor()
    return {"invented": ref.invented(rebuilt), "divergence": ref.divergence(rebuilt),
            "invented_train": floor["invented"], "divergence_train": floor["divergence"],
            "non_flat_original": int((non_flat & ~near).sum()),
            "median_colours": float(np.median(colours[non_flat])) if non_flat.any() else 1.0,
            "near_copy_share": copy_share(tiles, ["near_copy" if n else "" for n in near])}


def _layer(screens, placement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Screens side by side: (rows, cols·S) atlas index and local id per cell."""
    if not screens:
        raise NesganError("no generated screens to lay out in the map")
    grids = [np.asarray(ids, dtype=np.int64) for _, ids in screens]
    ids = np.concatenate(grids, axis=1)  # (14, 14·S) report tile ids
    return placement[ids, 0], placement[ids, 1]


def _preview_png(which: np.ndarray, local: np.ndarray, atlases: list[Atlas]) -> bytes:
    """The layer drawn from the atlases' pixels: what Tiled shows, pixel for pixel."""
    h, w = which.shape
    cells = np.where(which[..., None, None, None] == 0,
                     atlases[0].tiles[np.where(which == 0, local, 0)] if atlases[0].tilecount else 0,
                     atlases[1].tiles[np.where(which == 1, local, 0)] if atlases[1].tilecount else 0)
    # (h, w, 16, 16, 3) -> (h, 16, w, 16, 3) -> (h·16, w·16, 3)
    img = cells.astype(np.uint8).swapaxes(1, 2).reshape(h * TILE, w * TILE, 3)
    return encode_png(img, indexed=True)
