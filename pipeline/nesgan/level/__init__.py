"""`nesgan level`: grow a whole level from a few painted screens.

`grow_level(LevelConfig(...)) -> LevelReport` is what the command runs. Modules: `example`
reads the example map's tile layer and writes the grown map (the example's tilesets
referenced), `patterns` counts N×N windows and row tiles and holds the numbers a level is
judged by, `grow` is the solver. Nothing here imports torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from nesgan.errors import NesganError
from nesgan.level.example import read_example, write_level
from nesgan.level.grow import build_model, grow
from nesgan.level.patterns import longest_copied_run, symmetric_kl, violations, windows
from nesgan.nes.export import MAX_MAP_COLUMNS, SCREEN_ROWS

SCREEN_COLUMNS = 16  # an NES screen is 256 px: 16 columns of 16-px tiles
MAX_SCREENS = 256  # 4,096 columns: far past any NES cartridge; bounds the work


@dataclass(frozen=True)
class LevelConfig:
    example: Path  # a Tiled map with a few painted screens
    out: Path  # the grown map (.tmx)
    screens: int  # width in 16-column screens
    layer: str | None = None  # None: the only tile layer, or the one painted with nesgan's tiles
    pattern: int = 2  # N: every N×N window of the level is one the example shows
    seed: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.screens <= MAX_SCREENS:
            raise NesganError(f"--screens {self.screens}: grow 1…{MAX_SCREENS} screens")
        if self.pattern not in (2, 3):
            raise NesganError(f"--pattern {self.pattern}: the pattern is 2 (2×2 windows) or 3")
        if Path(self.out).suffix.lower() != ".tmx":
            raise NesganError(f"--out {self.out}: the level is written as a Tiled map; name it "
                              "LEVEL.tmx")
        if Path(self.out).resolve() == Path(self.example).resolve():
            raise NesganError(f"--out {self.out} is the example itself; write the level to "
                              "another file")


@dataclass
class LevelReport:
    out: Path
    layer: str
    size: tuple[int, int]  # (columns, rows) of the grown level
    example_size: tuple[int, int]
    pattern: int
    patterns: int  # distinct N×N windows in the example
    restarts: int
    backtracks: int
    seconds: float
    kl: dict[int, float]  # window size -> symmetric KL, example vs level, on tile ids
    longest_copy: int  # longest run of level columns copied from the example
    other_layers: list[str] = field(default_factory=list)

    @property
    def nes_ok(self) -> bool:
        """export-nes takes the level: at most 494 columns (NROM) and 15 rows."""
        return self.size[0] <= MAX_MAP_COLUMNS and self.size[1] <= SCREEN_ROWS

    def summary(self) -> str:
        (w, h), (ew, eh) = self.size, self.example_size
        lines = [
            f"grew {self.out}: {w}×{h} tiles ({w // SCREEN_COLUMNS} screens) from layer "
            f"{self.layer!r} ({ew}×{eh}, {self.patterns} distinct {self.pattern}×{self.pattern} "
            f"windows) in {self.seconds:.2f} s, {self.restarts} restarts, {self.backtracks} "
            "backtracks",
            f"every {self.pattern}×{self.pattern} window is one the example shows, every tile on "
            f"a row that shows it; tile-pattern KL 2×2 {self.kl[2]:.3f}, 3×3 {self.kl[3]:.3f}; "
            f"longest run of columns copied from the example: {self.longest_copy}",
        ]
        if self.other_layers:
            lines.append("grown from one layer; not read: "
                         + ", ".join(repr(n) for n in self.other_layers))
        if self.size[0] > MAX_MAP_COLUMNS:
            lines.append(f"note: {w} columns is wider than export-nes takes ({MAX_MAP_COLUMNS}, "
                         f"NROM's 32 KiB: at most {MAX_MAP_COLUMNS // SCREEN_COLUMNS} screens); "
                         "grow fewer --screens for a ROM")
        elif self.size[1] <= SCREEN_ROWS:
            lines.append(f"play it: nesgan export-nes {self.out}")
        return "\n".join(lines)


def grow_level(config: LevelConfig) -> LevelReport:
    """Read the example, grow the level, check it, write it; nothing is written on a refusal."""
    t0 = time.perf_counter()
    example = read_example(config.example, config.layer)
    grid = example.gids
    what = f"layer {example.layer!r} of {config.example}"
    model = build_model(grid, config.pattern, what)
    width = config.screens * SCREEN_COLUMNS
    with tqdm(total=width, desc="level", unit="col", leave=False,
              disable=config.quiet, delay=0.5) as bar:
        def progress(done: int) -> None:
            bar.update(done - bar.n)  # backtracking moves it back

        growth = grow(model, width, config.seed, progress=progress)
    level = growth.level
    broken = violations(grid, level, config.pattern)
    if broken:  # the solver's promise; a failure here is a bug, not the user's
        raise AssertionError("grown level breaks the example's rules: " + "; ".join(broken))
    seconds = time.perf_counter() - t0
    write_level(example, level, config.out)
    return LevelReport(
        out=Path(config.out), layer=example.layer, size=(level.shape[1], level.shape[0]),
        example_size=(example.width, example.height), pattern=config.pattern,
        patterns=len(windows(grid, config.pattern)), restarts=growth.restarts,
        backtracks=growth.backtracks, seconds=seconds,
        kl={n: symmetric_kl(windows(grid, n), windows(level, n)) for n in (2, 3)},
        longest_copy=longest_copied_run(grid, level), other_layers=example.other_layers)


__all__ = ["LevelConfig", "LevelReport", "grow_level", "symmetric_kl"]
