"""Real reuse: how NES games reuse their own art, and how many of those reuses the near-copy
verdicts catch (`real_reuse`, run by `nearcopy_bench`).

Training: every grid cell of a few screens of each training game (HUD and sprites included), kept
as `nesgan.tiles.nearcopy.TileIndex` keeps a training folder, so `nearcopy.verdicts` reads it as
export-tiles does: the default reading, and with `--under-sprites` the tile reading then the
sprite reading. Queries: new screens of the same games (copies) and of held-out games (not),
each made by one kind of reuse (REUSE_KINDS).
"""

from __future__ import annotations

import time

import numpy as np

from nesgan.bench.reference import brute_nearest_merge
from nesgan.colour.palette import EMITTABLE
from nesgan.tiles.distance import frequency_labels, recolour_map
from nesgan.tiles.nearcopy import OCCLUDED, TileIndex, Verdicts, trivial_mask, verdicts
from nesgan.tiles.tile import DEFAULT_NEAR_COPY_PIXELS, TILE, flips, slice_tiles

REUSE_KINDS = ("palette", "merge1", "merge2", "sprites", "statusbar")


def _repalette(game, rng: np.random.Generator, merged: int):
    """The game under another palette set: a new backdrop and new sub-palettes (the same layout,
    the same drawings); `merged` colours of each sub-palette take the backdrop colour."""
    from dataclasses import replace

    pick = rng.choice(EMITTABLE, size=13, replace=False)
    backdrop, rest = int(pick[0]), pick[1:].reshape(4, 3)
    subs = []
    for sp in rest:
        sp = [int(c) for c in sp]
        for j in rng.choice(3, size=merged, replace=False):
            sp[j] = backdrop
        subs.append(tuple(sp))
    return replace(game, backdrop=backdrop, subpalettes=tuple(subs))


def reuse_screens(seed: int, games: range, shots: range) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The training set as export-tiles indexes it: unique tiles, and every cell of every screen
    (tile id, screen, x/y), as `nesgan.tiles.nearcopy.TileIndex` keeps them."""
    from nesgan.museum.synth import make_game, render_frame
    from nesgan.tiles.tile import dedupe

    cells, screen, xy = [], [], []
    for i, (g, s) in enumerate((g, s) for g in games for s in shots):
        tiles, pos = slice_tiles(render_frame(make_game(seed, g), s).indices)
        cells.append(tiles)
        screen.append(np.full(len(tiles), i, np.int32))
        xy.append(pos.astype(np.int32))
    uniq, inverse, _ = dedupe(np.concatenate(cells))
    return uniq, inverse.astype(np.int32), np.concatenate(screen), np.concatenate(xy), len(cells)


def reuse_queries(seed: int, games: range, shots: range, kind: str, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Query cells of `kind` from new shots of `games`, with the clean source cells each one
    shows (original palette, no sprites; (Q, 2, 16, 16): for a status bar off the grid the two
    HUD cells a query cell straddles, else the same cell twice), and per query the pixels a
    sprite covers ((Q, 16, 16) bool)."""
    from nesgan.museum.synth import make_game, render_frame, render_scrolled

    queries, sources, covered = [], [], []
    for g in games:
        game = make_game(seed, g)
        for s in shots:
            clean = render_frame(game, s, sprites=False).indices
            src, _ = slice_tiles(clean)
            cover = np.zeros((len(src), TILE, TILE), bool)
            if kind in ("palette", "merge1", "merge2"):
                other = _repalette(game, rng, {"palette": 0, "merge1": 1, "merge2": 2}[kind])
                q, _ = slice_tiles(render_frame(other, s, sprites=False).indices)
                pair = np.stack([src, src], 1)
            elif kind == "sprites":
                frame = render_frame(game, s, sprites=True)
                q, _ = slice_tiles(frame.indices)
                cover = slice_tiles(frame.sprite_mask.astype(np.uint8))[0].astype(bool)
                keep = cover.any((1, 2))  # only the cells a sprite stands on
                q, pair, cover = q[keep], np.stack([src, src], 1)[keep], cover[keep]
            else:  # statusbar: the level scrolled by a non-multiple of 16 px, the HUD fixed
                if not game.hud_top:  # a bottom panel's text is off the 16-px grid already
                    continue
                shift = int(rng.integers(1, 16))
                screen = render_scrolled(game, s, shift, sprites=False)
                px = (-shift) % 16  # the level's grid phase, as a cropper finds it
                band = screen[16:32]  # the HUD's text: name-table rows 2–3
                hud = clean[16:32]  # the same text, on the grid
                n = (256 - px) // 16
                q = np.stack([band[:, px + 16 * i : px + 16 * i + 16] for i in range(n)])
                left = np.stack([hud[:, 16 * ((px + 16 * i) // 16) : 16 * ((px + 16 * i) // 16) + 16] for i in range(n)])
                right = np.stack([hud[:, min(16 * ((px + 16 * i) // 16 + 1), 240) : min(16 * ((px + 16 * i) // 16 + 1), 240) + 16]
                                  for i in range(n)])
                pair = np.stack([left, right], 1)
                cover = np.zeros((n, TILE, TILE), bool)
            queries.append(q)
            sources.append(pair)
            covered.append(cover)
    return np.concatenate(queries), np.concatenate(sources), np.concatenate(covered)


def reuse_index(seed: int, games: range, shots: range) -> TileIndex:
    """The training screens as export-tiles indexes a training folder (`reuse_screens`)."""
    tiles, cells, cell_screen, cell_xy, n_screens = reuse_screens(seed, games, shots)
    first = np.unique(cells, return_index=True)[1]  # where each unique tile is first seen
    return TileIndex(tiles=tiles, screen=cell_screen[first], xy=cell_xy[first],
                     screens=[f"shot{i}" for i in range(n_screens)], fingerprint=f"real_reuse:{seed}",
                     cells=cells, cell_screen=cell_screen, cell_xy=cell_xy)


def real_reuse(seed: int = 0, train_games: int = 8, held_out_games: int = 6, shots: int = 8,
               query_shots: int = 6, sprite_shots: int = 24, k: int = DEFAULT_NEAR_COPY_PIXELS,
               kinds: tuple[str, ...] = REUSE_KINDS) -> dict:
    """Precision and recall per kind of reuse (REUSE_KINDS), as real games reuse their art.

    Training: every grid cell of `shots` screens of each training game (HUD and sprites
    included). Queries: new screens of the same games (positives: cells whose clean source is
    within K of a training tile) and of held-out games (negatives: cells whose clean source is
    more than 2K from every training tile — the museum's games share a font and stock art), each
    made by one kind: another palette set; one or two colours of each sub-palette merged into the
    backdrop; sprites drawn over the background (`sprite_shots` screens: only the cells a sprite
    stands on count); the level scrolled while the status bar stays (its text off the level's
    grid). Trivial cells are left out.

    Per kind, `nearcopy.verdicts` as export-tiles runs it: the default reading, and
    `--under-sprites` (the tile reading, then the sprite reading; `tile_reading_only` counts the
    first alone). Negatives are labelled by their source; each false flag is also checked by
    brute force against every training tile, and `precision_by_definition` counts only those
    more than K away under the merge distance as false (a held-out tile whose colours merged
    into a training tile's drawing *is* a copy by the definition)."""
    index = reuse_index(seed, range(train_games), range(shots))
    train, wide = index.tiles, index.search(2 * k)
    index.search(k), index.occlusion(k)  # built before the timings, as the sprite index below
    t0 = time.perf_counter()
    sprites = index.sprites(k)
    assert sprites is not None
    sprite_index_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1)
    timing: dict[str, float] = {}
    asked: dict[str, int] = {}
    out: dict[str, object] = {"train_tiles": int(len(train)), "train_screens": len(index.screens),
                              "sprite_blocks_indexed": int(len(sprites.codes)),
                              "sprite_index_s": round(sprite_index_s, 2)}
    bands = ((1, 16), (17, 64), (65, 128), (129, 256))
    for kind in kinds:
        new_shots = range(100, 100 + (sprite_shots if kind == "sprites" else query_shots))
        fig: dict[str, object] = {}
        flags: dict[str, dict[str, np.ndarray]] = {}
        for label, games in (("pos", range(train_games)), ("neg", range(train_games, train_games + held_out_games))):
            q, src, cover = reuse_queries(seed, games, new_shots, kind, rng)
            near = np.stack([wide.search(src[:, j]).distance for j in range(2)], 1)
            keep = ~trivial_mask(q, k) & ~(trivial_mask(src[:, 0], k) & trivial_mask(src[:, 1], k))
            keep &= (near.max(1) <= k) if label == "pos" else (near.min(1) > 2 * k)
            q, src, sprite = q[keep], src[keep, 0], cover[keep]
            cover = sprite.reshape(len(q), -1).sum(1)
            t0 = time.perf_counter()
            plain = verdicts(index, q, k)
            t1 = time.perf_counter()
            under = verdicts(index, q, k, occluded=True)
            t2 = time.perf_counter()
            flag = plain.found.distance <= k
            hidden = np.array([m == OCCLUDED for m in under.match], bool)
            by_sprite = np.array([w is not None for w in under.sprite_from], bool)
            occluded, tile_only = flag | hidden, flag | (hidden & ~by_sprite)
            if (~flag).any():
                timing[label] = timing.get(label, 0.0) + max((t2 - t1) - (t1 - t0), 0.0)
                asked[label] = asked.get(label, 0) + int((~flag).sum())
                if label == "neg":  # as shown, the training tile under a sprite?
                    fig["under_sprites_false_flags_only_under_the_sprite"] = _only_under_sprite(
                        src, sprite, train, under, hidden, k)
            flags[label] = {"default": flag, "under_sprites": occluded, "tile_reading_only": tile_only}
            if label == "neg":  # false flags by source: which are copies by the definition?
                d = np.array([brute_nearest_merge(q[i], train)[0] for i in np.flatnonzero(flag)], np.int64)
                fig["false_flags_within_k_by_brute_force"] = int((d <= k).sum())
                fig["false_flag_brute_force_distances"] = {str(v): int(c) for v, c in enumerate(np.bincount(d)) if c}
                if kind.startswith("merge"):  # a stricter rule for merges? what the flags rest on
                    fig["false_flags_two_colour_merge_only"] = _merge_only_share(q, plain, k)
            if label == "pos" and kind.startswith("merge"):
                fig["true_flags_two_colour_merge_only"] = _merge_only_share(q, plain, k)
            if kind == "sprites" and label == "pos":
                sel = [(lo, hi, (cover >= lo) & (cover <= hi)) for lo, hi in bands]
                fig["positives_by_sprite_pixels"] = {f"{lo}-{hi}": int(m.sum()) for lo, hi, m in sel}
                for name in ("default", "tile_reading_only", "under_sprites"):
                    fig[f"recall_by_sprite_pixels_{name}"] = {
                        f"{lo}-{hi}": round(float(flags[label][name][m].mean()), 3) for lo, hi, m in sel if m.any()}
        npos, nneg = len(flags["pos"]["default"]), len(flags["neg"]["default"])
        fig.update({"positives": npos, "negatives": nneg})
        for name in ("default", "under_sprites", "tile_reading_only"):
            tp, fp = int(flags["pos"][name].sum()), int(flags["neg"][name].sum())
            fig[name] = {"recall": round(tp / max(npos, 1), 3), "precision": round(tp / max(tp + fp, 1), 3),
                         "false_flags": fp}
        tp, fp = int(flags["pos"]["default"].sum()), int(flags["neg"]["default"].sum())
        fp_def = fp - int(fig["false_flags_within_k_by_brute_force"])
        fig["default"]["precision_by_definition"] = round(tp / max(tp + fp_def, 1), 3)
        tp, fp_more = int(flags["pos"]["under_sprites"].sum()), int((flags["neg"]["under_sprites"] & ~flags["neg"]["default"]).sum())
        fp_def += fp_more - int(fig.get("under_sprites_false_flags_only_under_the_sprite", 0))
        fig["under_sprites"]["precision_by_definition"] = round(tp / max(tp + fp_def, 1), 3)
        out[kind] = fig
        print(f"  real reuse {kind}: {fig}", flush=True)
    out["under_sprites_cost"] = {f"{lab}_queries_read": asked.get(lab, 0) for lab in ("pos", "neg")}
    out["under_sprites_cost"]["seconds_both_readings"] = round(sum(timing.values()), 2)
    return out


def _merge_only_share(q: np.ndarray, plain: Verdicts, k: int) -> dict:
    """Of the flagged cells: how many show ≤ 2 colours and match only through a merge (the
    one-to-one reading is farther than K) — what a stricter rule for 2-colour merges would
    unflag."""
    found = plain.found
    flag = np.flatnonzero(found.distance <= k)
    if not len(flag):
        return {"flagged": 0, "two_colour_merge_only": 0}
    _, colours = frequency_labels(q[flag])
    only = (colours <= 2) & np.array([plain.match[i] == "merge" for i in flag], bool)
    hist = np.bincount(found.distance[flag][only], minlength=k + 1)
    return {"flagged": int(len(flag)), "two_colour_merge_only": int(only.sum()),
            "their_distances": {str(v): int(c) for v, c in enumerate(hist) if c}}


def _only_under_sprite(sources: np.ndarray, sprites: np.ndarray, train: np.ndarray, under: Verdicts,
                       hidden: np.ndarray, k: int) -> int:
    """How many occluded matches (`hidden`) are, as shown, their training tile under a sprite:
    outside the pixels the real sprite covers, the clean source cell is within K of the matched
    training tile (mirrored the way it matched, recoloured by those pixels). A query with no
    sprite never is."""
    n = 0
    for i in np.flatnonzero(hidden):
        if not sprites[i].any():
            continue
        t = flips(train[under.found.train_id[i]][None])[int(under.found.flip[i]), 0]  # as the query
        seen = ~sprites[i]
        n += int((recolour_map(sources[i][seen], t[seen])[t[seen]] != sources[i][seen]).sum() <= k)
    return n
