"""Comparing checkpoint trees: the resume tests' notion of 'bitwise the same run'."""

import torch


def states_equal(a, b, path="") -> list[str]:
    """Paths where two checkpoint trees differ (tensors compared bitwise)."""
    if isinstance(a, torch.Tensor):
        return [] if isinstance(b, torch.Tensor) and torch.equal(a, b) else [path]
    if isinstance(a, dict):
        if set(a) != set(b):
            return [path + " keys"]
        return [d for k in a for d in states_equal(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, (list, tuple)):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in states_equal(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]
