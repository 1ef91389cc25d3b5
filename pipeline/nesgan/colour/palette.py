"""The NES master palette and perceptual nearest-colour matching.

Facts (NESdev's PPU palette pages): 64 entries $00–$3F, bits 5–4 brightness and 3–0 hue. $0D is
"blacker than black" and is never emitted; $0E, $0F, $1D–$1F, $2E, $2F, $3E, $3F all render
black and are written as $0F; $20 and $30 are the same white and are written as $30. That leaves
54 colours nesgan ever writes (`EMITTABLE`).

Emulators render the palette with different RGB tables, so matching is by nearest colour in
OKLab (Ottosson 2020): a perceptual space whose Euclidean distance tracks perceived difference
well, costs two 3×3 matrix products and a cube root (so a 2²⁴-entry lookup table builds in
seconds), and is smooth everywhere, unlike CIEDE2000's piecewise hue terms.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nesgan.errors import NesganError

# The 2C02 table common in NESdev-derived emulators: exactly 54 distinct RGB values, and its
# $2D/$3D greys match hardware. Rows are $00, $10, $20, $30.
_TABLE_2C02 = """
545454 001E74 081090 300088 440064 5C0030 540400 3C1800 202A00 083A00 004000 003C00 00323C 000000 000000 000000
989698 084CC4 3032EC 5C1EE4 8814B0 A01464 982220 783C00 545A00 287200 087C00 007628 006678 000000 000000 000000
ECEEEC 4C9AEC 787CEC B062EC E454EC EC58B4 EC6A64 D48820 A0AA00 74C400 4CD020 38CC6C 38B4CC 3C3C3C 000000 000000
ECEEEC A8CCEC BCBCEC D4B2EC ECAEEC ECAED4 ECB4B0 E4C490 CCD278 B4DE78 A8E290 98E2B4 A0D6E4 A0A2A0 000000 000000
"""

# FCEUX / AlmightyGuru table (used by nes-py). Its $3D renders pink where hardware shows grey.
_TABLE_FCEUX = """
7C7C7C 0000FC 0000BC 4428BC 940084 A80020 A81000 881400 503000 007800 006800 005800 004058 000000 000000 000000
BCBCBC 0078F8 0058F8 6844FC D800CC E40058 F83800 E45C10 AC7C00 00B800 00A800 00A844 008888 000000 000000 000000
F8F8F8 3CBCFC 6888FC 9878F8 F878F8 F85898 F87858 FCA044 F8B800 B8F818 58D854 58F898 00E8D8 787878 000000 000000
FCFCFC A4E4FC B8B8F8 D8B8F8 F8B8F8 F8A4C0 F0D0B0 FCE0A8 F8D878 D8F878 B8F8B8 B8F8D8 00FCFC F8D8F8 000000 000000
"""

BUILTIN_TABLES = {"2c02": _TABLE_2C02, "fceux": _TABLE_FCEUX}
DEFAULT_TABLE = "2c02"

BLACK = 0x0F  # canonical black
WHITE = 0x30  # canonical white ($20 renders the same)
FORBIDDEN = 0x0D  # "blacker than black": can upset TVs' sync; never written
_BLACK_ALIASES = (0x0D, 0x0E, 0x1D, 0x1E, 0x1F, 0x2E, 0x2F, 0x3E, 0x3F)


def _canonical_table() -> np.ndarray:
    canon = np.arange(64, dtype=np.uint8)
    for i in _BLACK_ALIASES:
        canon[i] = BLACK
    canon[0x20] = WHITE
    return canon


CANONICAL = _canonical_table()  # index -> the index nesgan writes for that colour
EMITTABLE = np.array(sorted(set(CANONICAL.tolist())), dtype=np.uint8)  # the 54 written indices
assert len(EMITTABLE) == 54 and FORBIDDEN not in EMITTABLE


def _parse_table(text: str) -> np.ndarray:
    values = [int(h, 16) for h in text.split()]
    assert len(values) == 64
    return np.array([[(v >> 16) & 255, (v >> 8) & 255, v & 255] for v in values], dtype=np.uint8)


# OKLab (Ottosson 2020): linear sRGB -> cone-like LMS (M1), then cube root and M2 -> L, a, b.
OKLAB_M1 = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ],
    dtype=np.float32,
)
OKLAB_M2 = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ],
    dtype=np.float32,
)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB values in 0–1 -> linear light (the IEC 61966-2-1 transfer function)."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in 0–255 -> (..., 3) OKLab (L in 0–1), float32."""
    lin = srgb_to_linear(np.asarray(rgb, dtype=np.float32) / 255.0)  # 1. linear light
    # 2. LMS = M1·lin; 3. L, a, b = M2·cbrt(LMS)
    return (np.cbrt(lin @ OKLAB_M1.T) @ OKLAB_M2.T).astype(np.float32)


@dataclass(frozen=True)
class Palette:
    """An RGB rendering of the 64 NES colours plus perceptual matching onto its 54 emittable ones."""

    rgb: np.ndarray  # (64, 3) uint8, indexed by NES colour $00–$3F
    name: str = DEFAULT_TABLE
    _lab: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rgb = np.asarray(self.rgb)
        if rgb.shape != (64, 3):
            raise NesganError(f"a NES palette has 64 RGB entries, got an array of shape {rgb.shape}")
        object.__setattr__(self, "rgb", rgb.astype(np.uint8))
        object.__setattr__(self, "_lab", srgb_to_oklab(self.rgb[EMITTABLE]))

    @classmethod
    def builtin(cls, name: str = DEFAULT_TABLE) -> Palette:
        try:
            return cls(_parse_table(BUILTIN_TABLES[name]), name)
        except KeyError:
            raise NesganError(
                f"unknown palette {name!r}; built in: {', '.join(sorted(BUILTIN_TABLES))}"
            ) from None

    @classmethod
    def from_pal_file(cls, path: str | Path) -> Palette:
        """Read a 192-byte .pal file (64 × RGB). Emulator files with the 8 emphasis variants
        (1536 bytes) are accepted too; their first 192 bytes are the plain palette."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise NesganError(f"cannot read palette file {path}: {e.strerror}") from None
        if len(data) not in (192, 1536):
            raise NesganError(
                f"{path} is {len(data)} bytes; a NES .pal file is 192 bytes "
                "(64 colours × R, G, B) or 1536 with emphasis variants"
            )
        rgb = np.frombuffer(data[:192], dtype=np.uint8).reshape(64, 3)
        return cls(rgb.copy(), path.stem)

    def to_pal_bytes(self) -> bytes:
        return self.rgb.astype(np.uint8).tobytes()

    @property
    def fingerprint(self) -> str:
        """Short hash of the RGB table: part of cache keys built from this palette."""
        return hashlib.sha256(self.to_pal_bytes()).hexdigest()[:16]

    def pil_palette(self) -> list[int]:
        """768 ints for `Image.putpalette`, palette index == NES colour index."""
        flat = self.rgb.reshape(-1).tolist()
        return flat + [0] * (768 - len(flat))

    def to_rgb(self, indices: np.ndarray) -> np.ndarray:
        """NES colour indices (any shape) -> RGB uint8 (shape + (3,))."""
        return self.rgb[np.asarray(indices, dtype=np.intp)]

    def nearest(self, rgb: np.ndarray) -> np.ndarray:
        """(..., 3) RGB uint8 -> (...) uint8 NES indices, the perceptually nearest emittable one.

        Works on the unique colours only, so a 224×224 screen costs at most its colour count.
        """
        rgb = np.asarray(rgb, dtype=np.uint8)
        if rgb.shape[-1] != 3:
            raise ValueError(f"expected (..., 3) RGB, got shape {rgb.shape}")
        flat = rgb.reshape(-1, 3)
        packed = (flat[:, 0].astype(np.uint32) << 16) | (flat[:, 1].astype(np.uint32) << 8) | flat[:, 2]
        uniq, inverse = np.unique(packed, return_inverse=True)
        uniq_rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
        return self.nearest_unique(uniq_rgb)[inverse].reshape(rgb.shape[:-1])

    def nearest_unique(self, rgb: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
        """(N, 3) RGB -> (N,) nearest emittable NES index, in chunks to bound memory."""
        out = np.empty(len(rgb), dtype=np.uint8)
        for start in range(0, len(rgb), chunk):
            lab = srgb_to_oklab(rgb[start : start + chunk])
            d = ((lab[:, None, :] - self._lab[None, :, :]) ** 2).sum(-1)  # (n, 54)
            out[start : start + chunk] = EMITTABLE[d.argmin(1)]
        return out


def load_palette(pal_file: str | Path | None = None) -> Palette:
    """The user's .pal file when given, else the built-in default table."""
    return Palette.from_pal_file(pal_file) if pal_file else Palette.builtin()
