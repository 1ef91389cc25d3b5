"""What a run shows its user (rank 0 only): metrics.jsonl rows, sample grids, SWD and the quality
numbers of `nesgan.gan.quality` at every sample step, and metrics.png drawn from the rows."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from nesgan.files import JsonlAppender, atomic_write_bytes, read_jsonl, write_jsonl
from nesgan.gan import quality, swd
from nesgan.gan.config import WINDOWS, TrainConfig
from nesgan.gan.data import Streams, on_palette, to_float, to_uint8
from nesgan.gan.plot import metrics_image
from nesgan.gan.sample import grid_image, render
from nesgan.images import encode_png


class Monitor:
    """Opened once per `train` call: keeps the rows up to `start` (a killed run may have logged
    past its last checkpoint), measures the training screens' reference values, then appends."""

    def __init__(self, cfg: TrainConfig, screens: torch.Tensor, start: int):
        self.cfg, self.run = cfg, Path(cfg.run)
        self.path = self.run / "metrics.jsonl"
        self.rows = [r for r in read_jsonl(self.path) if r.get("step", 0) <= start]
        write_jsonl(self.path, self.rows)
        # The real half of SWD and the training values of the quality numbers: fixed sets,
        # measured once (own seeded generators: torch's global RNG is left alone for resume).
        n = screens.shape[0]
        swd_idx = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 4))[:cfg.swd_images]
        self.real_desc = swd.descriptors(to_float(screens[swd_idx]), seed=cfg.seed)
        # its sorted projections, the same at every sample step: sorted once (0.4 s a step)
        self.real_sorted = [swd.projections(d, d.shape[0], cfg.seed) for d in self.real_desc]
        self.reference = quality.reference(screens.numpy(), cfg.swd_images, seed=cfg.seed)
        self.reference.windows.save(self.run / WINDOWS)  # what `generate` chooses its screens by
        self.appender = JsonlAppender(self.path)
        self.last_swd: float | None = None

    def sample(self, step: int, ema: torch.nn.Module, streams: Streams,
               device: torch.device) -> dict:
        """Sample grid (samples/step-NNNNNN.png and latest.png), SWD and the quality numbers of
        the fixed generated set; returns the fields for this step's metrics row. The grid shows
        the screens as `generate` writes them: in NES colours."""
        screens = on_palette(to_uint8(render(ema, streams.fixed_noise.to(device))))
        grid = encode_png(grid_image(screens, self.cfg.grid))
        atomic_write_bytes(self.run / "samples" / f"step-{step:06d}.png", grid)
        atomic_write_bytes(self.run / "samples" / "latest.png", grid)
        fakes = render(ema, streams.swd_noise.to(device))  # (swd_images, 3, 224, 224)
        levels = swd.swd(self.real_desc, swd.descriptors(fakes, seed=self.cfg.seed), seed=self.cfg.seed,
                         real_sorted=self.real_sorted)
        self.last_swd = sum(levels) / len(levels)
        return {"swd": round(self.last_swd, 3), "swd_levels": [round(v, 3) for v in levels],
                **quality.measure(to_uint8(fakes), self.reference)}

    def log(self, row: dict) -> None:
        """Append a metrics row; after a sample step, redraw metrics.png from all rows."""
        self.appender.append(row)
        self.rows.append(row)
        if row.get("swd") is not None:
            buf = io.BytesIO()
            metrics_image(self.rows).save(buf, "PNG", optimize=True)
            atomic_write_bytes(self.run / "metrics.png", buf.getvalue())

    def close(self) -> None:
        self.appender.close()
