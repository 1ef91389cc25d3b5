"""Make the README's pictures from a finished `nesgan demo` run: `make pictures`.

Usage: python scripts/readme_pictures.py DEMO_WORKDIR OUT_DIR
Every picture is the pipeline's own output, enlarged (when at all) by an integer factor with
nearest-neighbour so no colour is invented; the level is rendered by Tiled's own tmxrasterizer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from nesgan.files import read_jsonl


def _row(images: list[Image.Image], gap: int = 8) -> Image.Image:
    """Images side by side on a dark strip, top-aligned."""
    h = max(im.height for im in images)
    w = sum(im.width for im in images) + gap * (len(images) - 1)
    strip = Image.new("RGB", (w, h), (32, 32, 32))
    x = 0
    for im in images:
        strip.paste(im.convert("RGB"), (x, 0))
        x += im.width + gap
    return strip


def _first_frame(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.seek(0)
        return im.convert("RGB")


def main(work: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    raw = [r for r in read_jsonl(work / "data" / "raw" / "manifest.jsonl") if r["status"] == "ok"]
    # 1. what the museum serves: the first shots of three different games
    shots, games = [], set()
    for r in raw:
        if r["game"] not in games and (r["width"], r["height"]) in ((256, 224), (256, 240)):
            games.add(r["game"])
            shots.append(_first_frame(work / "data" / "raw" / r["path"]))
        if len(shots) == 3:
            break
    _row(shots).save(out / "museum.png")
    # 2. the 224×224 crops those shots became
    screens = [r for r in read_jsonl(work / "data" / "screens" / "manifest.jsonl") if r["status"] == "ok"]
    _row([Image.open(work / "data" / "screens" / r["path"]) for r in screens[:3]]).save(out / "screens.png")
    # 3. training samples (EMA generator, fixed noise) at the last sample step: the grid's top two
    # rows (8 screens), and the run's metrics plot
    grids = sorted((work / "runs" / "demo" / "samples").glob("step-*.png"))
    last = Image.open(grids[-1]).convert("RGB")
    last.crop((0, 0, last.width, min(last.height, 2 * last.width // 4))).save(out / "samples.png")
    shutil.copyfile(work / "runs" / "demo" / "metrics.png", out / "metrics.png")
    # 4. the level as Tiled renders it (the first 8 screens)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    subprocess.run(["tmxrasterizer", "--no-smoothing", "--scale", "1", str(work / "level.tmx"),
                    str(out / "level-tiled.png")], check=True, env=env, capture_output=True)
    level = Image.open(out / "level-tiled.png")
    level.crop((0, 0, min(level.width, 8 * 224), level.height)).save(out / "level-tiled.png")
    # 5. the tileset atlas after the sheet, 2× so single pixels are visible; and before it: the
    # same screens exported with --max-tiles 0 (every distinct quantized cell), its first 128 tiles
    atlas = Image.open(work / "tilesets" / "nesgan.png").convert("RGB")
    atlas.resize((atlas.width * 2, atlas.height * 2), Image.NEAREST).save(out / "tileset-after.png")
    from nesgan.tiled.export import ExportConfig, export_tiles

    before = work / "before-sheet"
    export_tiles(ExportConfig(generated=work / "data" / "generated", train=work / "data" / "screens",
                              tilesets_dir=before / "tilesets", tiles_dir=before / "tiles", max_tiles=0))
    raw_atlas = Image.open(before / "tilesets" / "nesgan.png").convert("RGB").crop((0, 0, 256, 128))
    raw_atlas.resize((512, 256), Image.NEAREST).save(out / "tileset-before.png")
    # 6. the top of the first sheet page, of the rebuild picture and of the first contact sheet
    page = Image.open(work / "tiles" / "sheet-000.png")
    page.crop((0, 0, page.width, min(page.height, 372))).save(out / "sheet.png")
    diff = Image.open(work / "tiles" / "rebuild-diff.png")
    diff.crop((0, 0, diff.width, min(diff.height, 224))).save(out / "rebuild-diff.png")
    sheet = Image.open(work / "tiles" / "contact-000.png")
    sheet.crop((0, 0, sheet.width, min(sheet.height, 420))).save(out / "contact.png")
    # 7. the demo's ROM in an emulator beside Tiled's render of the same 256 px
    nes_vs_tiled(work / "level.nes", out / "level-tiled.png", out / "nes-vs-tiled.png")
    # 8. `nesgan level`: the demo's map (its first 4 screens' worth of columns) above the level
    # grown from it, both as Tiled renders them, and the grown level's ROM beside Tiled
    grown_pictures(work, out, env)
    museum_level_picture(out, env)
    # 9. the museum's named drawings beside the sheet's nearest tile (recolouring allowed)
    named_picture(work, out / "named.png")
    sizes = {p.name: Image.open(p).size for p in sorted(out.glob("*.png"))}
    print("\n".join(f"{k}: {v[0]}×{v[1]}" for k, v in sizes.items()))
    assert np.asarray(Image.open(out / "level-tiled.png")).size


def grown_pictures(work: Path, out: Path, env: dict[str, str]) -> None:
    renders = {}
    for name in ("level", "grown"):
        png = out / f"{name}-full.png"
        subprocess.run(["tmxrasterizer", "--no-smoothing", "--scale", "1", str(work / f"{name}.tmx"),
                        str(png)], check=True, env=env, capture_output=True)
        renders[name] = Image.open(png).convert("RGB")
        png.unlink()
    width = 4 * 256  # four NES screens of each
    example = renders["level"].crop((0, 0, min(width, renders["level"].width), renders["level"].height))
    grown = renders["grown"].crop((0, 0, min(width, renders["grown"].width), renders["grown"].height))
    sheet = Image.new("RGB", (width, example.height + grown.height + 8), (32, 32, 32))
    sheet.paste(example, (0, 0))
    sheet.paste(grown, (0, example.height + 8))
    sheet.save(out / "level-grown.png")
    grown.save(out / "grown-tiled.png")
    nes_vs_tiled(work / "grown-nes" / "level.nes", out / "grown-tiled.png", out / "grown-nes-vs-tiled.png")
    (out / "grown-tiled.png").unlink()


def named_picture(work: Path, dest: Path, scale: int = 3, cols: int = 5) -> None:
    """For each kind of named museum drawing the training screens show (brick, question, pipe_l,
    …), its closest drawing (as its game paints it) beside the closest tile of the demo's sheet
    and the pixels between them (`nesgan.museum.named`); prints how many drawings the sheet holds."""
    from PIL import ImageDraw

    from nesgan.images import open_rgb
    from nesgan.museum.named import colour_codes, holding, museum_drawings, seen_in, sheet_tiles

    screens = np.stack([colour_codes(open_rgb(p)) for p in sorted((work / "data" / "screens").glob("*.png"))])
    seen = seen_in(screens, museum_drawings())  # the demo's museum: seed 0, 12 games
    atlases = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((work / "tilesets").glob("nesgan*.png"))]
    rgb = np.concatenate([sheet_tiles(a).astype(np.int64) for a in atlases])
    tiles_rgb = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], -1).astype(np.uint8)
    held = holding(rgb, seen)
    best: dict[str, int] = {}
    for i, d in enumerate(held.drawings):
        if d.kind not in best or held.pixels[i] < held.pixels[best[d.kind]]:
            best[d.kind] = i
    side = 16 * scale
    cw, ch = 2 * side + 12, side + 14
    im = Image.new("RGB", (cols * cw, -(-len(best) // cols) * ch), (32, 32, 32))
    draw = ImageDraw.Draw(im)
    for k, (kind, i) in enumerate(best.items()):
        x, y = (k % cols) * cw, (k // cols) * ch
        im.paste(Image.fromarray(held.drawings[i].rgb).resize((side, side), Image.NEAREST), (x, y))
        im.paste(Image.fromarray(tiles_rgb[held.nearest[i]]).resize((side, side), Image.NEAREST), (x + side + 4, y))
        draw.text((x, y + side + 1), f"{kind} {held.pixels[i]} px", fill=(220, 220, 220))
    im.save(dest)
    print(f"named drawings the sheet holds: {held.held(0)} exactly, {held.held()} within 8 px, "
          f"{held.held(32)} within 32 px, of the {len(seen)} the training screens show; by kind "
          + ", ".join(f"{k} {a}/{b}" for k, (a, b) in held.kinds().items()))


def museum_level_picture(out: Path, env: dict[str, str]) -> None:
    """The bench's hand-made example (four museum screens) above an 8-screen level grown from
    it with --pattern 3, both rendered by tmxrasterizer."""
    import tempfile

    from nesgan.bench.level_bench import museum_example
    from nesgan.level import LevelConfig, grow_level

    with tempfile.TemporaryDirectory() as tmp:
        example = museum_example(Path(tmp))
        grown = Path(tmp) / "grown.tmx"
        grow_level(LevelConfig(example=example, out=grown, screens=8, pattern=3, seed=1, quiet=True))
        renders = []
        for tmx in (example, grown):
            png = Path(tmp) / f"{tmx.stem}.png"
            subprocess.run(["tmxrasterizer", "--no-smoothing", "--scale", "1", str(tmx), str(png)],
                           check=True, env=env, capture_output=True)
            renders.append(Image.open(png).convert("RGB"))
    top, bottom = renders
    sheet = Image.new("RGB", (bottom.width, top.height + bottom.height + 8), (32, 32, 32))
    sheet.paste(top, (0, 0))
    sheet.paste(bottom, (0, top.height + 8))
    sheet.save(out / "level-museum.png")


def nes_vs_tiled(rom: Path, tiled_png: Path, dest: Path, frames: int = 10) -> None:
    """The ROM's frame after boot (cynes, the visible rows 8–231) beside Tiled's render of the
    map's first 256 px, and a third panel marking any pixel whose colour class differs."""
    from cynes import NES

    nes = NES(str(rom))
    for _ in range(frames):
        frame = np.asarray(nes.step(), dtype=np.uint8)  # (240, 256, 3), cynes's own RGB table
    emu = frame[8:232]
    tiled = np.asarray(Image.open(tiled_png).convert("RGB"))[:224, :256]
    # one colour mapping: Tiled's RGB -> cynes RGB must be a function for the frames to agree
    pairs = {}
    bad = np.zeros(emu.shape[:2], bool)
    for y, x in np.ndindex(*bad.shape):
        key = tuple(tiled[y, x])
        bad[y, x] = pairs.setdefault(key, tuple(emu[y, x])) != tuple(emu[y, x])
    mask = np.where(bad[..., None], np.array([255, 0, 0], np.uint8), np.uint8(24))
    print(f"nes-vs-tiled: {int(bad.sum())} pixels disagree under one colour mapping")
    panels = [Image.fromarray(a).resize((512, 448), Image.NEAREST) for a in (emu, tiled, mask)]
    _row(panels).save(dest)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
