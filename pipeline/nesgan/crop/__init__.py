"""`nesgan crop`: pixel-exact 224×224 screens from screenshots, never resampled.

Entry point: `screens.crop_folder(CropConfig) -> CropSummary` (and `frame.crop_bytes` for one
image). Modules: `screens` (the folder stage: resume, names, the manifest), `sources` (which
files are inputs), `frame` (guarded decoding, exact colour conversion, integer-scale reduction,
the crop window), `load` (reading finished crops back for training), `hud` (a game's status
bar and the window that leaves it out). The 16 px grid phase of a frame is `nesgan.grid`'s: the
near-copy index finds it too.
"""
