"""Commands that turn screens into tiles, maps, NES data and levels: quantize, export-tiles,
export-nes, level."""

from __future__ import annotations

from pathlib import Path

import click

from nesgan.cli import P, cli


@cli.command("quantize")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--out", default=None, type=P, help="Output folder (default: SRC-quantized).")
@click.option("--nes-attributes", is_flag=True,
              help="Also obey NES attribute rules: one backdrop, 4 sub-palettes, one per 16×16 cell.")
@click.option("--palette", "palette_file", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A 192-byte .pal file (64 × RGB) instead of the built-in table.")
def quantize_cmd(src: Path, out: Path | None, nes_attributes: bool, palette_file: Path | None) -> None:
    """Map every pixel onto the NES palette by perceptual (OKLab) nearest colour.

    Writes one palette-mode PNG per image (palette index == NES colour index) plus
    manifest.jsonl. No dithering; $0D is never written.
    """
    from nesgan.colour.quantize import QuantizeConfig, quantize_path

    config = QuantizeConfig(src=src, out=out, nes_attributes=nes_attributes, palette_file=palette_file)
    report = quantize_path(config)
    click.echo(report.summary())
    report.raise_if_none_ok(src)


@cli.command("export-tiles")
@click.option("--generated", default="data/generated", show_default=True, type=P, help="Generated screens.")
@click.option("--train", "train_dir", default=["data/screens"], show_default=True, type=P, multiple=True,
              help="Training screens, for the near-copy check; give it once per folder to check "
                   "against several.")
@click.option("--tmx", default=None, type=P, help="Also write (or update) this Tiled map.")
@click.option("--tilesets", default="tilesets", show_default=True, type=P, help="Folder for TSX + PNG atlases.")
@click.option("--tiles", "tiles_dir", default="tiles", show_default=True, type=P,
              help="Folder for tiles.jsonl and contact sheets.")
@click.option("--name", default="nesgan", show_default=True, help="Tileset name.")
@click.option("--near-copy-pixels", default=None, type=click.IntRange(0, 256),
              help="Flag tiles within K differing pixels of a training tile (default 4).")
@click.option("--max-tiles", default=256, show_default=True, type=int,
              help="Tile budget: group the cells of all generated screens into at most N clean tiles, "
                   "each drawn from the most typical cell of its group (or, for noisy copies of one "
                   "drawing, voted pixel by pixel). 0 keeps every distinct quantized cell as it is.")
@click.option("--palettes", default=None, type=int,
              help="Cap the whole sheet at one backdrop and K 3-colour sub-palettes (1–4; 4 = one NES "
                   "palette set, what an NES export needs), and keep it within one NES pattern table "
                   "(≤ 255 distinct 8×8 patterns: the budget is lowered where it would need more). "
                   "Without it each tile still shows ≤ 4 colours.")
@click.option("--under-sprites/--no-under-sprites", default=False, show_default=True,
              help="Also flag a tile that is a training tile with a sprite standing on it (match "
                   "'occluded'). Two readings: a small blob (≤ 48 px) in colours the training tile "
                   "cannot explain, coming in from the tile's edge, is not counted; a larger sprite is "
                   "not counted when a training screen shows the same sprite (at any pixel offset, "
                   "recoloured) and a training tile explains the rest within K. Rows say how many "
                   "pixels were excused and where training showed the sprite (sprite_from); the "
                   "contact sheet hatches them. Off by default: it reads every tile left original "
                   "again, against every 3×3 block of the training screens.")
def export_tiles_cmd(generated, train_dir, tmx, tilesets, tiles_dir, name, near_copy_pixels, max_tiles,
                     palettes, under_sprites) -> None:
    """Make a compact 16×16 tile sheet from generated screens; export it for Tiled.

    The sheet has at most --max-tiles tiles of at most 4 colours each (a backdrop plus a 3-colour
    sub-palette), ordered by sub-palette and use; every generated cell is drawn with one of them,
    so the map rebuilds every screen from the sheet (how far from the quantized screens is printed
    and drawn in TILES/rebuild-diff.png; TILES/sheet-*.png shows each tile with the cells it stands
    for). Near-copy verdicts are given on the sheet's tiles. Against the --train screens the sheet
    is the one of eight k-means seedings whose map comes closest to their patterns, and at most a
    quarter of its tiles of two or more colours are near-copies: where more would be, whole
    training drawings (a `?` block G drew entire) count less in the grouping.

    Tile ids are stable: re-exporting into the same tilesets keeps every existing tile's id
    and pixels and only appends new ones (so a tileset can outgrow one export's budget). An
    existing --tmx map keeps its own tilesets, layers and objects; nesgan adds or refreshes its
    tilesets and its layer NAME (14 tile columns per generated screen, 14 rows), growing the map
    right and down when it is smaller.
    """
    from nesgan.tiled.export import ExportConfig, export_tiles

    config = ExportConfig(generated=generated, train=tuple(train_dir), tilesets_dir=tilesets,
                          tiles_dir=tiles_dir, name=name, tmx=tmx,
                          near_copy_pixels=near_copy_pixels, max_tiles=max_tiles, palettes=palettes,
                          under_sprites=under_sprites)
    for line in export_tiles(config).summary_lines():
        click.echo(line)


@cli.command("export-nes")
@click.argument("tmx", metavar="MAP.tmx", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", default="nes", show_default=True, type=P,
              help="Folder for tiles.chr, screen-NN.nam, palette.pal and level.nes.")
@click.option("--layer", default=None,
              help="The tile layer to export (default: the one painted with nesgan's tilesets).")
@click.option("--palette", "palette_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The 192-byte .pal table the tilesets' colours come from (default: nesgan's "
                   "built-in table, which its tilesets use).")
def export_nes_cmd(tmx: Path, out: Path, layer: str | None, palette_file: Path | None) -> None:
    """Turn a map painted with nesgan's tiles into NES data and a ROM that scrolls it.

    \b
    Writes into OUT:
      tiles.chr      the pattern table: 16 bytes per 8×8 tile, at most 256
      screen-NN.nam  a nametable per 256-px screen: 960 tile bytes + 64 attribute bytes
      palette.pal    the 16 background palette bytes for $3F00 (backdrop + 4 × 3)
      level.nes      an iNES NROM ROM: open it in any NES emulator (FCEUX, Mesen, Nestopia…)
                     or a flash cartridge; hold Right/Left on the d-pad to scroll the map

    The map must obey the NES background rules, or nothing is written: at most 15 tiles
    (240 px) tall (a 14-tile map shows in the NTSC-visible rows 8–231), at most 4 colours in a
    16×16 tile counting one backdrop shared by the whole map, at most 4 sub-palettes of 3
    colours, at most 256 distinct 8×8 patterns (a 16×16 tile is four), and at most 494 tiles
    wide (NROM's 32 KiB). Empty cells and transparent pixels show the backdrop; flipped tiles
    become patterns of their own (the NES cannot flip background tiles).
    """
    from nesgan.nes import NesConfig, export_nes

    report = export_nes(NesConfig(tmx=tmx, out=out, layer=layer, palette_file=palette_file))
    click.echo(report.summary())


@cli.command("level")
@click.argument("example", metavar="EXAMPLE.tmx",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=P, help="The level to write (a Tiled .tmx map).")
@click.option("--screens", required=True, type=click.IntRange(1, 256),
              help="Level width in NES screens of 16 tile columns. export-nes takes at most 30 "
                   "(494 columns, NROM's 32 KiB); wider levels are for Tiled and your own engine.")
@click.option("--layer", default=None,
              help="The example's tile layer (default: the only one, or the one painted with "
                   "nesgan's tilesets).")
@click.option("--pattern", default=2, show_default=True, type=click.Choice(["2", "3"]),
              help="N: every N×N window of the level is one the example shows. 3 keeps larger "
                   "shapes whole (pipes, platforms) and copies longer runs; 2 mixes more freely.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed: the same example and seed grow the same level.")
def level_cmd(example: Path, out: Path, screens: int, layer: str | None, pattern: str,
              seed: int) -> None:
    """Grow a whole level, N screens wide, from a few screens painted in Tiled.

    Reads the example's tile layer (the demo's level.tmx, or screens you painted with nesgan's
    tiles; flipped tiles count as tiles of their own) and writes a map as tall as the example
    and 16·N columns wide, referencing the same tilesets, in which:

    \b
      - every N×N window of tiles is one the example shows, on the same rows (so ground stays
        at the bottom and the status bar and sky at the top), in about the example's
        proportions (weighted by how often the example shows each window);
      - only the example's tiles appear, so a level grown from a map that export-nes takes is
        one it takes too (up to 30 screens wide): `nesgan export-nes LEVEL.tmx`.

    The level is grown column by column, each column drawn exactly from the columns that fit
    the last ones; dead ends backtrack, then restart; it never writes a level that breaks the
    example's patterns. An example whose patterns cannot continue to the right (too narrow, no
    column ever repeats) is refused, naming a window that ends it. Prints how close the
    level's tile-pattern statistics are to the example's (symmetric KL on 2×2 and 3×3
    windows) and the longest run of columns it copied.
    """
    from nesgan.level import LevelConfig, grow_level

    report = grow_level(LevelConfig(example=example, out=out, screens=screens, layer=layer,
                                    pattern=int(pattern), seed=seed))
    click.echo(report.summary())
