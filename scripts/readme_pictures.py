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
    # 3. training samples (EMA generator, fixed noise)
    shutil.copyfile(work / "runs" / "demo" / "samples" / "latest.png", out / "samples.png")
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
    sizes = {p.name: Image.open(p).size for p in sorted(out.glob("*.png"))}
    print("\n".join(f"{k}: {v[0]}×{v[1]}" for k, v in sizes.items()))
    assert np.asarray(Image.open(out / "level-tiled.png")).size


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
