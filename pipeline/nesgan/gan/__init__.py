"""The DCGAN stage: `train(TrainConfig)` and `generate(GenerateConfig)`.

Modules: `config` (frozen settings, presets), `model` (generator, discriminator, EMA), `data`
(screens in memory, seeded order), `swd` (sliced Wasserstein distance quality number),
`checkpoint` (atomic, `weights_only` checkpoints), `train` (the loop, DDP), `sample` (grids,
`generate`).
"""
