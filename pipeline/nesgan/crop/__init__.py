"""`nesgan crop`: pixel-exact 224×224 screens from screenshots, never resampled.

Entry point: `screens.crop_folder(CropConfig) -> CropSummary` (and `crop_bytes` for one image).
Modules: `screens` (inputs, exact colour conversion, integer-scale reduction, the crop window,
names, the manifest), `grid` (the 16 px grid phase of a frame), `hud` (a game's status bar and
the window that leaves it out).
"""
