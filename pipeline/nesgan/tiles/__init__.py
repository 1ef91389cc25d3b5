"""16×16 tiles: slicing, dedupe, near-copy verdicts against the training art.

Entry point: `build.build_tiles(TileConfig) -> TileReport` (the tile stage that export-tiles runs).
Modules: `tile` (the basics: slicing, flips, shape keys, exact dedupe), `distance` (the merge and
one-to-one distances between two tiles), `search` (the guaranteed-recall index of the nearest
training tile), `nearcopy` (the cached training index and the verdicts), `sheet` and
`vote` (the tile sheet), `contact` (contact sheets), `build` (the stage).
"""
