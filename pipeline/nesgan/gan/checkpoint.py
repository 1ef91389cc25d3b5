"""Checkpoints: one dict of tensors and plain containers, written atomically, read with
`torch.load(weights_only=True)`; unreadable or mismatched files become one clear line."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nesgan.errors import NesganError
from nesgan.files import atomic_write
from nesgan.gan.data import Streams
from nesgan.gan.step import Nets

FORMAT = "nesgan-dcgan-1"  # bump when the checkpoint layout changes


def save_checkpoint(state: dict[str, Any], path: Path, also: Path | None = None) -> None:
    """Write `state` to `path` atomically and durably (`files.atomic_write`); `also` gets the same
    bytes (a hard link when the filesystem allows, so periodic snapshots cost no extra write)."""
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f), also=also)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (`weights_only=True`); any damage is one `NesganError` line."""
    if not path.exists():
        raise NesganError(f"no checkpoint at {path}; train first with `nesgan train --run "
                          f"{path.parent.parent}`")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError,
            ValueError, KeyError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NesganError(f"checkpoint {path} is corrupt or not a nesgan checkpoint ({first[:120]}); "
                          "use an earlier checkpoints/step-*.pt or retrain with --overwrite") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise NesganError(f"{path} is not a nesgan checkpoint (format "
                          f"{state.get('format') if isinstance(state, dict) else type(state).__name__!r}, "
                          f"expected {FORMAT!r})")
    return state


def load_weights(module: nn.Module, weights: dict[str, torch.Tensor], what: str, path: Path) -> None:
    """`load_state_dict` that turns an architecture mismatch into one line naming the first one."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise NesganError(f"{path} holds a {what} of another architecture ({detail[:160]}); "
                          "train a new run or use the nesgan version that wrote it") from None


def training_state(step: int, config: dict[str, Any], nets: Nets, streams: Streams,
                   world_size: int) -> dict[str, Any]:
    """Everything a run needs to continue bitwise: weights, optimizer moments, data order,
    noise streams and torch's RNG (plus CUDA's on a GPU)."""
    cuda = next(nets.g.parameters()).device.type == "cuda"
    return {
        "step": step, "config": config,
        "generator": nets.g.state_dict(), "discriminator": nets.d.state_dict(),
        "ema": nets.ema.state_dict(), "opt_g": nets.opt_g.state_dict(), "opt_d": nets.opt_d.state_dict(),
        "data": streams.sampler.state_dict(), "noise": streams.noise.get_state(),
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if cuda else []},
        "fixed_noise": streams.fixed_noise.cpu(), "swd_noise": streams.swd_noise.cpu(),
        "world_size": world_size,
    }


def restore(state: dict[str, Any], nets: Nets, streams: Streams, path: Path,
            device: torch.device) -> int:
    """Put a `training_state` back into freshly built (CPU) networks and streams; returns the
    step it was saved at. Call before moving the networks to `device`."""
    load_weights(nets.g, state["generator"], "generator", path)
    load_weights(nets.d, state["discriminator"], "discriminator", path)
    load_weights(nets.ema, state["ema"], "EMA generator", path)
    nets.opt_g.load_state_dict(state["opt_g"])
    nets.opt_d.load_state_dict(state["opt_d"])
    streams.sampler.load_state_dict(state["data"])
    streams.noise.set_state(state["noise"])
    torch.set_rng_state(state["rng"]["torch"])
    if device.type == "cuda" and state["rng"].get("cuda"):
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    streams.fixed_noise, streams.swd_noise = state["fixed_noise"], state["swd_noise"]
    return state["step"]
