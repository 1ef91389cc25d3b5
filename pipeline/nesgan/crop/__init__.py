"""`nesgan crop`: pixel-exact 224×224 screens from screenshots, never resampled.

Entry point: `screens.crop_folder(CropConfig) -> CropSummary` (and `crop_bytes` for one image).
Modules: `screens` (exact colour conversion, integer-scale reduction, the crop window, the
manifest), `grid` (the 16 px grid phase of a frame).
"""
