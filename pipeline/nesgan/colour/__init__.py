"""The NES palette and everything that puts pixels on it (`nesgan quantize`).

Entry point: `quantize.quantize_path(QuantizeConfig) -> QuantizeReport`.
Modules: `palette` (the 64-entry table, canonical indices, OKLab; a leaf), `lut` (the cached
2²⁴-entry nearest-colour table, `quantize_rgb`), `attributes` (one backdrop + four 3-colour
sub-palettes, one per 16×16 cell), `quantize` (the stage).
"""
