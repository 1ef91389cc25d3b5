"""The GAN stage: `train(TrainConfig)` and `generate(GenerateConfig)`.

Modules: `config` (frozen settings, presets, architecture names), `model` (the `nes`, `upsample`
and `dcgan` generators, discriminator, EMA), `augment` (shift and cut-out of D's inputs), `data` (screens in memory, seeded order and noise
streams, NES-palette snapping), `step` (one D + G + EMA step), `swd` (sliced Wasserstein
distance), `quality` (orphan pixels, distinct tiles, colours per cell, diversity, mode coverage),
`monitor` (sample grids and metrics rows), `plot` (metrics.png), `checkpoint` (atomic,
`weights_only` checkpoints; the training state and its restore), `interrupt` (Ctrl-C/SIGTERM),
`snapshots` (checkpoints by step), `threads` (how many CPU threads), `train` (the loop, DDP),
`sample` (rendering, `generate`).
"""
