"""From a Tiled map to a real NES: pattern table, nametables, palette and an NROM ROM.

`export_nes(NesConfig(tmx=...))` is what `nesgan export-nes` runs. Modules: `level` reads the
map layer as NES colour indices, `nametable` chooses palettes and encodes nametables and
attribute tables, `chr` the 8×8 patterns, `rom` the iNES image around the fixed 6502 viewer in
`asm/`. Nothing here imports torch.
"""

from nesgan.nes.export import NesConfig, NesReport, export_nes

__all__ = ["NesConfig", "NesReport", "export_nes"]
