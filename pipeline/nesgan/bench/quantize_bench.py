"""Quantization benchmark: the 2²⁴ lookup table against Pillow's `Image.quantize(palette=…)`.

Same 224×224 images for both, timed side by side in one run: museum screens through an
emulator palette with generator-like noise and blur (so they hold thousands of off-palette
colours, as GAN output does). Figures: the speed ratio, how often Pillow's choice (nearest in
plain RGB) differs from the perceptual (OKLab) nearest colour, per-image matching without the
table (`Palette.nearest` on unique colours) as a second reference, the one-time table build, and
the NES-attribute solver's time per screen.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from nesgan.colour.lut import build_lut, load_lut, quantize_rgb
from nesgan.colour.palette import EMITTABLE, Palette


def generator_like_screens(n: int, seed: int = 0) -> list[np.ndarray]:
    """(224, 224, 3) uint8 screens: museum frames, blurred a little, with Gaussian noise (σ = 10)."""
    from nesgan.museum.synth import make_game, render_frame

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        game = make_game(seed, i % 8)
        frame = render_frame(game, i)
        rgb = game.palette().to_rgb(frame.indices[8:232, 16:240])
        rgb = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32)
        rgb = np.clip(rgb + rng.normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
        out.append(rgb)
    return out


def _pillow_palette_image(palette: Palette) -> Image.Image:
    pal = Image.new("P", (1, 1))
    flat = palette.rgb[EMITTABLE].reshape(-1).tolist()
    pal.putpalette(flat + flat[-3:] * (256 - len(EMITTABLE)))  # pad with a repeat, never chosen first
    return pal


def run(out: Path, quick: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    palette = Palette.builtin()
    t0 = time.perf_counter()
    build_lut(palette)
    build_s = time.perf_counter() - t0
    lut = load_lut(palette)
    images = generator_like_screens(8 if quick else 64)
    repeats = 1 if quick else 3

    t0 = time.perf_counter()
    for _ in range(repeats):
        ours = [quantize_rgb(im, palette, lut) for im in images]
    lut_s = (time.perf_counter() - t0) / repeats

    pal_img = _pillow_palette_image(palette)
    t0 = time.perf_counter()
    for _ in range(repeats):
        pil = [np.asarray(Image.fromarray(im).quantize(palette=pal_img, dither=Image.Dither.NONE))
               for im in images]
    pil_s = (time.perf_counter() - t0) / repeats

    t0 = time.perf_counter()
    direct = [palette.nearest(im) for im in images]
    direct_s = time.perf_counter() - t0

    from nesgan.colour.attributes import solve_attributes

    n_attr = min(len(images), 4 if quick else 16)
    t0 = time.perf_counter()
    for im in images[:n_attr]:
        solve_attributes(im, palette, lut=lut)
    attr_s = (time.perf_counter() - t0) / n_attr

    ours_all = np.stack(ours)
    pil_nes = EMITTABLE[np.minimum(np.stack(pil), len(EMITTABLE) - 1)]
    colours = np.mean([len(np.unique(im.reshape(-1, 3), axis=0)) for im in images[:8]])
    return {
        "images": len(images),
        "distinct_colours_per_image": int(colours),
        "lut_build_s": round(build_s, 2),
        "lut_ms_per_image": round(1000 * lut_s / len(images), 3),
        "pillow_ms_per_image": round(1000 * pil_s / len(images), 3),
        "speedup_vs_pillow": round(pil_s / lut_s, 1),
        "direct_oklab_ms_per_image": round(1000 * direct_s / len(images), 2),
        "speedup_vs_direct_oklab": round(direct_s / lut_s, 1),
        # float32 rounding can split exact ties the other way: a few pixels in a million
        "lut_vs_direct_oklab_disagree_fraction": float(np.mean([(a != b).mean() for a, b in zip(ours, direct, strict=True)])),
        "pillow_disagrees_with_perceptual_fraction": round(float((pil_nes != ours_all).mean()), 4),
        "attribute_solver_ms_per_image": round(1000 * attr_s, 1),
    }
