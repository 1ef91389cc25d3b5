"""`nesgan export-tiles`: Tiled tilesets (TSX + PNG atlas) and a TMX map, merged safely into yours.

Entry point: `export.export_tiles(ExportConfig) -> ExportReport`.
Modules: `tmx` (safe XML, layer data codecs, atlases, in the TMX vocabulary), `merge` (adding or
refreshing nesgan's tilesets and layer in an existing map), `export` (the stage).
"""
