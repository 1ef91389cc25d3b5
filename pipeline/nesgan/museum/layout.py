"""How a museum screen is laid out: sky, ground with pits, castle walls, platforms, pipes,
ladders and scenery, as metatile numbers on the 15×16 grid of a 256×240 screen (synth.py draws
them). Every step draws from the shot's generator in a fixed order: same seed, same screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nesgan.museum.synth import Game

H_CELLS, W_CELLS = 15, 16  # 240×256 screen in 16×16 attribute cells


class LevelLayout:
    """One screen's metatile grid under construction: the layout steps of `layout`, in order.

    Every step draws from the same generator in a fixed order, so a seed gives the same screen."""

    def __init__(self, game: Game, rng: np.random.Generator):
        self.game, self.rng, self.ids, self.theme = game, rng, game.ids, game.theme
        self.top = 2 if game.hud_top else 0  # first row the level may use (rows 0–1 hold the HUD)
        self.bottom = H_CELLS if game.hud_top else H_CELLS - 2  # rows [top, bottom) are the level's
        self.sky = self.ids["sky"]
        self.grid = np.full((H_CELLS, W_CELLS), self.sky, dtype=np.int32)
        if not game.hud_top:
            self.grid[self.bottom:, :] = self.ids["hud_panel"]
        self.surface = np.full(W_CELLS, -1, dtype=np.int32)  # ground's top row per column (-1: pit)
        self.ceiling = self.theme in ("underground", "castle")
        self.open_row = self.top + (2 if self.ceiling else 0)  # first row with headroom
        self.water = (self.ids.get("water"), self.ids.get("water_top"), self.sky)
        self.ground_top = self.bottom - 1
        self.platforms: list[tuple[int, int, int]] = []  # (row, x0, length)

    def put(self, r: int, x: int, name: str, over: tuple[int, ...] | None = None) -> None:
        """Place a metatile on an in-level cell, only over sky (or the given metatiles)."""
        if name in self.ids and self.top <= r < self.bottom and 0 <= x < W_CELLS:
            if self.grid[r, x] in (over if over is not None else (self.sky,)):
                self.grid[r, x] = self.ids[name]

    def backdrop(self) -> None:
        """Stars at night (everything else may cover them), a sea below a water line."""
        if self.theme == "night":
            stars = self.rng.random((H_CELLS, W_CELLS)) < 0.08
            for r, x in zip(*np.nonzero(stars), strict=True):
                self.put(int(r), int(x), "stars")
        if self.theme == "water":
            line = self.top + int(self.rng.integers(2, 5))
            for x in range(W_CELLS):
                self.put(line, x, "water_top")
                for r in range(line + 1, self.bottom):
                    self.put(r, x, "water")

    def ground(self) -> None:
        """Segments at a wandering level, sometimes a pit (lava in castles), a ceiling below ground."""
        rng, surface, bottom = self.rng, self.surface, self.bottom
        low, high = bottom - 1, max(self.top + 5, bottom - 4)
        level = bottom - int(rng.integers(2, 4))
        x = 0
        while x < W_CELLS:
            if x > 1 and surface[x - 1] >= 0 and rng.random() < self.game.pit_rate:
                x += int(rng.integers(1, 3))
                continue
            width = int(rng.integers(2, 7))
            level = int(np.clip(level + rng.choice([-1, 0, 0, 0, 1]), high, low))
            surface[x : x + width] = level
            x += width
        if self.ceiling:
            for x in range(W_CELLS):
                self.put(self.top, x, "brick")
        surf_kind = {"castle": "stone", "underground": "brick", "water": "ground"}.get(self.theme, "ground_top")
        fill_kind = "brick" if self.theme == "castle" else "ground"
        for x in range(W_CELLS):
            s = surface[x]
            if s < 0:
                if self.theme == "castle":
                    self.put(bottom - 1, x, "lava")
                continue
            self.put(s, x, surf_kind, self.water)
            for r in range(s + 1, bottom):
                self.put(r, x, fill_kind, self.water)
        if (surface >= 0).any():
            self.ground_top = int(surface[surface >= 0].min())

    def castle_walls(self) -> None:
        """Raised castle walls with battlements and windows."""
        if self.theme == "castle" and self.rng.random() < 0.7:
            x0 = int(self.rng.integers(0, W_CELLS - 3))
            for x in range(x0, min(W_CELLS, x0 + int(self.rng.integers(3, 7)))):
                s = self.surface[x]
                if s - 2 >= self.open_row:
                    self.put(s - 2, x, "battlement")
                    self.put(s - 1, x, "window" if x % 2 else "brick")

    def floating_platforms(self) -> None:
        """Platforms of bricks / stones / question blocks, coins above some."""
        rng, ids = self.rng, self.ids
        for _ in range(int(rng.integers(0, 4))):
            r_hi = self.ground_top - 3
            if r_hi < self.open_row + 1:
                break
            r = int(rng.integers(self.open_row + 1, r_hi + 1))
            length = int(rng.integers(2, 6))
            x0 = int(rng.integers(0, W_CELLS - length + 1))
            solid = "stone" if self.theme in ("castle", "water") or "brick" not in ids else "brick"
            for x in range(x0, x0 + length):
                self.put(r, x, "question" if rng.random() < 0.3 else solid, self.water)
            self.platforms.append((r, x0, length))
            if "coin" in ids and rng.random() < 0.5:
                for x in range(x0, x0 + length):
                    self.put(r - 1, x, "coin", self.water)

    def pipes(self) -> None:
        """Pipes standing on flat ground."""
        ids, grid, surface = self.ids, self.grid, self.surface
        if "pipe_l" not in ids:
            return
        for _ in range(int(self.rng.integers(0, 3))):
            x = int(self.rng.integers(0, W_CELLS - 1))
            s = surface[x]
            if s < 0 or surface[x + 1] != s:
                continue
            h = int(self.rng.integers(1, 4))
            if s - h - 1 < self.open_row:
                continue
            for r in range(s - h, s):
                grid[r, x], grid[r, x + 1] = ids["pipe_l"], ids["pipe_r"]
            grid[s - h - 1, x], grid[s - h - 1, x + 1] = ids["pipe_top_l"], ids["pipe_top_r"]

    def ladders(self) -> None:
        """Ladders from a platform down to the ground."""
        if "ladder" not in self.ids:
            return
        for r, x0, length in self.platforms[:2]:
            x = x0 + int(self.rng.integers(0, length))
            if self.surface[x] > r + 1:
                for rr in range(r + 1, self.surface[x]):
                    self.put(rr, x, "ladder", self.water)

    def scenery(self) -> None:
        """Castle columns, trees, bushes, seaweed, clouds."""
        rng, ids, surface, put = self.rng, self.ids, self.surface, self.put
        if "column" in ids:
            for _ in range(int(rng.integers(0, 3))):
                x = int(rng.integers(0, W_CELLS))
                for r in range(self.open_row, surface[x] if surface[x] >= 0 else self.bottom):
                    put(r, x, "column")
        if "trunk" in ids:
            for _ in range(int(rng.integers(0, 3))):
                x = int(rng.integers(1, W_CELLS - 1))
                s = surface[x]
                h = int(rng.integers(1, 3))
                if s < 0 or s - h - 2 < self.open_row:
                    continue
                for r in range(s - h, s):
                    put(r, x, "trunk")
                for r in (s - h - 2, s - h - 1):
                    for xx in (x - 1, x, x + 1):
                        put(r, xx, "leaves")
        for name in ("bush_l", "seaweed"):
            if name in ids:
                for _ in range(int(rng.integers(0, 3))):
                    x = int(rng.integers(0, W_CELLS - 1))
                    s = surface[x]
                    if s < 0 or surface[x + 1] != s:
                        continue
                    if name == "bush_l" and self.grid[s - 1, x] == self.sky and self.grid[s - 1, x + 1] == self.sky:
                        put(s - 1, x, "bush_l")
                        put(s - 1, x + 1, "bush_r")
                    elif name == "seaweed":
                        put(s - 1, x, "seaweed", self.water)
        if "cloud_l" in ids:
            for _ in range(int(rng.integers(1, 4))):
                r = int(rng.integers(self.top, min(self.top + 5, self.bottom)))
                x = int(rng.integers(0, W_CELLS - 1))
                if self.grid[r, x] == self.sky and self.grid[r, x + 1] == self.sky:
                    put(r, x, "cloud_l")
                    put(r, x + 1, "cloud_r")


def layout(game: Game, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(15, 16) metatile numbers of one screen, and the ground's top row per column (-1: pit)."""
    level = LevelLayout(game, rng)
    for step in (level.backdrop, level.ground, level.castle_walls, level.floating_platforms,
                 level.pipes, level.ladders, level.scenery):
        step()
    return level.grid, level.surface
