"""`--arch patterns`: a generator that draws with a pattern table learned from the training art."""

import numpy as np
import pytest
import torch

from nesgan.gan.data import fake_screens, nes_indices
from nesgan.gan.model import Generator, build_models
from nesgan.gan.table import learn_table, quadrants, slot_cells


@pytest.fixture(scope="module")
def table():
    return learn_table(nes_indices(fake_screens(6, seed=3)))


def _generator(table, width: int = 4) -> Generator:
    torch.manual_seed(0)
    g, _ = build_models(width, 16, "patterns")
    g.head.set_table(table)
    return g


def test_slots_follow_the_backdrop_and_each_cells_colours_by_coverage():
    idx = np.full((1, 224, 224), 7, dtype=np.uint8)  # backdrop 7
    idx[0, :16, :16] = 3  # cell (0, 0): colour 3 over 256 - 20 pixels …
    idx[0, :4, :5] = 9  # … colour 9 over 20
    s = slot_cells(idx)
    assert s.shape == (1, 14, 14, 16, 16)
    assert (s[0, 0, 0][:4, :5] == 2).all() and (s[0, 0, 0][4:] == 1).all()
    assert (s[0, 1:] == 0).all(), "the backdrop is slot 0 everywhere"
    assert quadrants(s).shape == (14 * 14 * 4, 8, 8)


def test_the_table_holds_the_commonest_training_patterns_with_the_flat_ones_first(table):
    assert table.patterns.shape == (256, 8, 8) and table.patterns.max() <= 3
    for s in range(4):
        assert (table.patterns[s] == s).all()
    assert table.usage.sum() == pytest.approx(1.0) and (table.usage >= 0).all()
    assert len({p.tobytes() for p in table.patterns[table.usage > 0]}) == int((table.usage > 0).sum())
    assert table.seam_h.shape == table.seam_v.shape == (256, 256)
    assert table.backdrops.shape == table.colours.shape == (54,)
    assert table.backdrops.sum() == pytest.approx(1.0) and table.colours.sum() == pytest.approx(1.0)
    assert set(np.unique(table.seam_h)) <= {0.0, 1.0}


def test_a_checkerboard_beside_a_flat_pattern_is_a_seam_no_training_cell_shows():
    from nesgan import patterns
    from nesgan.gan.table import seam_table

    flat = np.zeros((8, 8), dtype=np.int64)
    stripes = np.tile([0, 1], (8, 4)).astype(np.int64)  # vertical stripes
    known = patterns.known_keys(np.stack([np.tile(np.repeat(np.tile([0, 1], 8)[None], 16, 0), (14, 14))]))
    seams = seam_table(np.stack([flat, stripes]), known, horizontal=True)
    assert seams[1, 1] == 1.0  # stripes continue stripes: the training art shows it
    assert seams[0, 0] == 0.0  # a flat 3×3 window never occurs in all-stripes training art


def _is_a_map_over(screens: torch.Tensor, table: np.ndarray) -> bool:
    """Every 8×8 block of every screen is some table pattern drawn in colours that depend on its
    slots only, and slot 0 is the same colour across each screen wherever it is drawn."""
    ids = nes_indices(((screens.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8))
    b = ids.shape[0]
    blocks = ids.reshape(b, 28, 8, 28, 8).transpose(0, 1, 3, 2, 4).reshape(b, -1, 1, 64).astype(np.int64)
    t = table.reshape(1, 1, len(table), 64)
    fits = np.ones((b, 28 * 28, len(table)), dtype=bool)  # block i fits pattern k
    colour_of_zero = np.full(fits.shape, -1)
    for v in range(4):
        mask = t == v
        hi = np.where(mask, blocks, -1).max(-1)
        lo = np.where(mask, blocks, 1 << 20).min(-1)
        fits &= (hi == lo) | ~mask.any(-1)  # one colour per slot
        if v == 0:
            colour_of_zero = np.where(mask.any(-1), hi, -1)
    for s in range(b):  # one backdrop colour per screen: some fitting pattern per block agrees on it
        if not fits[s].any(-1).all():
            return False
        options = [set(colour_of_zero[s, i][fits[s, i]].tolist()) for i in range(28 * 28)]
        needed = [o for o in options if -1 not in o]
        if needed and not set.intersection(*needed):
            return False
    return True


def test_every_generated_screen_is_exactly_a_map_over_its_table(table):
    g = _generator(table).eval()
    with torch.no_grad():
        screens = g(torch.randn(2, 16))
    assert screens.shape == (2, 3, 224, 224)
    assert _is_a_map_over(screens, table.patterns)
    speckled = screens.clone()
    speckled[0, :, 3, 3] = -speckled[0, :, 3, 3]  # one pixel off its pattern
    assert not _is_a_map_over(speckled, table.patterns)


def test_patterns_are_picked_straight_through_with_seam_and_usage_priors(table):
    g = _generator(table).train()
    out = g(torch.randn(4, 16))
    prior = g.head.prior_loss
    assert prior is not None and torch.isfinite(prior) and prior > 0
    (out.mean() + prior).backward()
    assert g.head.pattern.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in g.parameters())


def test_the_table_travels_in_the_state_dict_and_weights_only_loads_it(table, tmp_path):
    g = _generator(table)
    torch.save(g.state_dict(), tmp_path / "g.pt")
    h = Generator(4, 16, "patterns")
    assert not torch.equal(h.head.table, g.head.table)
    h.load_state_dict(torch.load(tmp_path / "g.pt", weights_only=True))
    assert torch.equal(h.head.table, torch.from_numpy(table.patterns))
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(g.eval()(z), h.eval()(z))


def test_the_nes_generator_keeps_the_weights_of_runs_before_patterns():
    keys = set(Generator(4, 16, "nes").state_dict())
    assert {"head.palette.weight", "head.attribute.weight", "head.slot.weight"} <= keys
    assert not any("table" in k or "pattern" in k for k in keys)


def test_drawing_patterns_is_the_weighted_sum_of_patterns_in_value_and_gradient():
    from nesgan.gan.model import DrawPatterns

    torch.manual_seed(1)
    shapes = torch.nn.functional.one_hot(torch.randint(0, 4, (5, 8, 8)), 4).permute(0, 3, 1, 2).float()
    logits = torch.randn(2, 5, 3, 4, requires_grad=True)
    soft = logits.softmax(1)
    hard = torch.nn.functional.one_hot(soft.argmax(1), 5).permute(0, 3, 1, 2).float()
    pick = hard + soft - soft.detach()
    ref = torch.einsum("bkyx,ksij->bsyixj", pick, shapes).reshape(2, 4, 24, 32)
    out = DrawPatterns.apply(soft.permute(0, 2, 3, 1), soft.argmax(1), shapes.flatten(1))
    assert torch.allclose(out, ref, atol=1e-6)  # the einsum carries the soft terms' rounding …
    assert set(out.unique().tolist()) == {0.0, 1.0}  # … the lookup draws exact slots
    weights = torch.randn_like(ref)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), logits, retain_graph=True)
    (g_out,) = torch.autograd.grad((out * weights).sum(), logits)
    assert torch.allclose(g_out, g_ref, atol=1e-6) and g_out.abs().sum() > 0


def test_drawing_patterns_under_bf16_autocast_takes_the_gradient_in_bf16():
    from nesgan.gan.model import DrawPatterns

    torch.manual_seed(2)
    shapes = torch.nn.functional.one_hot(torch.randint(0, 4, (6, 8, 8)), 4).permute(0, 3, 1, 2).float()
    soft = torch.randn(2, 3, 4, 6).softmax(-1).requires_grad_(True)
    weights = torch.randn(2, 4, 24, 32)

    def grad(autocast: bool) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = DrawPatterns.apply(soft, soft.argmax(-1), shapes.flatten(1))
        return torch.autograd.grad((out * weights).sum(), soft)[0]

    exact, fast = grad(False), grad(True)
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)  # the product ran in bf16 …
    ref = torch.einsum("bsyixj,ksij->byxk", weights.bfloat16().float().view(2, 4, 3, 8, 4, 8), shapes)
    assert torch.allclose(fast, ref, rtol=1e-2, atol=1e-2)  # … on the grads rounded to bf16
    assert torch.allclose(fast, exact, rtol=2e-2, atol=5e-2)


def test_colour_usage_counts_backdrops_per_screen_and_the_other_colours_per_pixel():
    from nesgan.colour.palette import EMITTABLE
    from nesgan.gan.table import colour_usage

    screens = np.full((2, 224, 224), 0x21, dtype=np.uint8)  # two sky-blue screens …
    screens[1] = 0x0F  # … no: one sky-blue, one black
    screens[:, :32] = 0x16  # and red over a seventh of each
    backdrops, colours = colour_usage(screens)
    pos = {int(c): i for i, c in enumerate(EMITTABLE)}
    assert backdrops[pos[0x21]] == backdrops[pos[0x0F]] == 0.5
    assert colours[pos[0x16]] == 1.0 and colours.sum() == pytest.approx(1.0)


def _invented(table, screens: torch.Tensor) -> float:
    from nesgan import patterns

    ids = nes_indices(((screens.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8))
    return patterns.invented_share(table.known, ids)


@pytest.fixture(scope="module")
def museum_table():
    """A table learned from 12 screens of the embedded museum's games: drawings, not noise."""
    from nesgan.museum import synth

    shots = [synth.render_frame(synth.make_game(0, g), k, sprites=False).indices[16:, :224]
             for g in range(3) for k in range(4)]
    return learn_table(np.stack(shots))


def test_out_of_training_each_cells_quarters_are_picked_so_no_3x3_window_is_invented(museum_table):
    g = _generator(museum_table).eval()
    with torch.no_grad():  # picks that scatter over the table, as an untrained G's would not
        g.head.pattern.weight.normal_(0, 3)
        g.head.pattern.bias.normal_(0, 3)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        decoded = g(z)
        g.head.known.fill_(-1)  # what a run from before the known partitions draws: plain argmax
        g.head._decoder = None
        plain = g(z)
    assert _invented(museum_table, plain) > 0.5, "independent picks meet in shapes the art lacks"
    assert _invented(museum_table, decoded) == 0.0
    assert _is_a_map_over(decoded, museum_table.patterns), "still exactly a map over the table"
    assert (decoded == plain).float().mean() > 0.5, "the same screens, corrected where they invent"


def test_training_keeps_the_plain_argmax_picks(table):
    g = _generator(table).train()
    z = torch.randn(2, 16)
    torch.manual_seed(0)
    with torch.no_grad():
        logits = g.head.pattern  # the 1×1 convolution the picks come from
        seen = {}
        hook = logits.register_forward_hook(lambda m, i, o: seen.setdefault("logits", o))
        g(z)
        hook.remove()
    picks = seen["logits"].float().argmax(1)  # (B, 28, 28)
    assert g.head._picks(seen["logits"].float().permute(0, 2, 3, 1), None).equal(picks)


def test_a_cell_takes_the_likeliest_quarters_whose_every_window_the_training_art_shows():
    from nesgan import patterns
    from nesgan.gan.decode import SeamDecoder

    stripes = np.tile([0, 1], (8, 4)).astype(np.int64)
    flat = np.zeros((8, 8), dtype=np.int64)
    known = patterns.known_keys(np.stack([np.tile(np.repeat(np.tile([0, 1], 8)[None], 16, 0), (14, 14))]))
    dec = SeamDecoder(torch.from_numpy(np.stack([flat, stripes])), torch.from_numpy(known.astype(np.int64)))
    logits = torch.zeros(1, 2, 2, 2)
    logits[..., 1] = 1.0  # stripes likelier everywhere …
    logits[0, 0, 1] = torch.tensor([2.0, 0.0])  # … but in the top-right quarter, flat by far
    distinct = torch.tensor([[[[0, 1, 2, 3]]]])
    assert logits.argmax(-1)[0, 0, 1] == 0
    assert dec.picks(logits, distinct).tolist() == [[[1, 1], [1, 1]]], "flat beside stripes is invented"
    merged = torch.tensor([[[[0, 0, 2, 3]]]])  # slot 1 in the backdrop's colour: stripes show as flat
    assert dec.picks(logits, merged).tolist() == [[[1, 0], [1, 1]]], "nothing passes: the likeliest wins"


def test_generators_of_one_table_share_a_decoder_whose_remembered_centres_answer_as_fresh_ones(table):
    from nesgan.gan.decode import Checks, decoder_for

    g1, g2 = _generator(table), _generator(table)
    assert decoder_for(g1.head.table, g1.head.known) is decoder_for(g2.head.table, g2.head.known)
    other = g2.head.table.clone()
    other[5] = 1 - other[5].clamp(max=1)
    assert decoder_for(other, g2.head.known) is not decoder_for(g1.head.table, g1.head.known)
    known = np.sort(table.known).astype(np.uint64)
    kept = Checks(table.patterns, known, 3)
    rng = np.random.default_rng(0)
    for _ in range(3):  # overlapping sets of centres: later calls answer partly from memory
        k = torch.from_numpy(rng.integers(0, len(table.patterns), (4, 200)))
        codes = kept.centre_code(*k)
        fresh = Checks(table.patterns, known, 3).centre_ok(codes)
        assert torch.equal(kept.centre_ok(codes), fresh) and fresh.any() and not fresh.all()


def test_a_cells_merge_code_labels_each_slot_by_the_first_slot_of_its_colour():
    from nesgan.gan.decode import _labels, merge_code

    codes = merge_code(np.array([[5, 6, 7, 8], [5, 5, 7, 8], [5, 6, 5, 6], [9, 9, 9, 9]]))
    assert [_labels(int(c)).tolist() for c in codes] == [[0, 1, 2, 3], [0, 0, 2, 3], [0, 1, 0, 1], [0, 0, 0, 0]]
    assert codes[0] == 0x3210, "four colours: each slot its own label"


def test_a_run_from_before_the_known_partitions_loads_and_draws_as_it_did(table, tmp_path):
    g = _generator(table)
    old = {k: v for k, v in g.state_dict().items() if k != "head.known"}
    torch.save(old, tmp_path / "g.pt")
    h = Generator(4, 16, "patterns")
    h.load_state_dict(torch.load(tmp_path / "g.pt", weights_only=True))
    assert (h.head.known == -1).all()
    z = torch.randn(2, 16)
    g.head.known.fill_(-1)
    g.head._decoder = None
    with torch.no_grad():
        assert torch.equal(g.eval()(z), h.eval()(z))


def test_new_runs_pick_patterns_from_a_3x3_neighbourhood_and_old_run_configs_keep_1x1():
    from nesgan.errors import NesganError
    from nesgan.gan.config import TrainConfig

    new = TrainConfig()
    assert (new.pattern_context, new.seam_weight, new.usage_weight, new.cell_weight) == (3, 3.0, 10.0, 1.0)
    later = ("pattern_context", "seam_weight", "usage_weight", "cell_weight")
    old = TrainConfig.from_dict({k: v for k, v in new.to_dict().items() if k not in later})
    assert (old.pattern_context, old.seam_weight, old.usage_weight, old.cell_weight) == (1, 1.0, 1.0, 0.0)
    assert TrainConfig.from_dict(new.to_dict()) == new
    with pytest.raises(NesganError, match="pattern_context must be 1 or 3"):
        TrainConfig(pattern_context=2)
    with pytest.raises(NesganError, match="usage_weight must be 0 or more"):
        TrainConfig(usage_weight=-1.0)
    with pytest.raises(NesganError, match="cell_weight must be 0 or more"):
        TrainConfig(cell_weight=-1.0)
    assert Generator(4, 16, "patterns", pattern_context=3).head.pattern.weight.shape[-2:] == (3, 3)
    assert Generator(4, 16, "patterns").head.pattern.weight.shape[-2:] == (1, 1)


def test_a_3x3_pattern_head_still_draws_exact_maps_and_weighs_its_seam_prior(table):
    torch.manual_seed(0)
    g, _ = build_models(4, 16, "patterns", pattern_context=3, seam_weight=3.0)
    g.head.set_table(table)
    with torch.no_grad():
        assert _is_a_map_over(g.eval()(torch.randn(2, 16)), table.patterns)
    z = torch.randn(4, 16)
    priors = []
    for weight in (1.0, 3.0):
        g.head.seam_weight = weight
        torch.manual_seed(1)
        g.train()(z)
        priors.append(float(g.head.prior_loss.detach()))
    seams = (priors[1] - priors[0]) / 2  # the same forward: only the seam term's weight differs
    assert seams > 0 and priors[0] > seams
    g.head.seam_weight = 0.0
    usage = []
    for weight in (0.0, 1.0, 3.0):  # the same forward again: the colour term, then 1× and 3× the usage term
        g.head.usage_weight = weight
        torch.manual_seed(1)
        g.train()(z)
        usage.append(float(g.head.prior_loss.detach()))
    once = usage[1] - usage[0]
    assert once > 0 and usage[2] - usage[0] == pytest.approx(3 * once, rel=1e-4)
    assert build_models(4, 16, "patterns", usage_weight=3.0)[0].head.usage_weight == 3.0


def test_pattern_maps_read_each_quarter_as_its_table_pattern_or_the_nearest(table):
    from nesgan.gan.table import pattern_maps

    idx = nes_indices(fake_screens(6, seed=3))
    maps = pattern_maps(idx, table.patterns, chunk=4)
    assert maps.shape == (6, 28, 28) and maps.dtype == np.int16
    slots = quadrants(slot_cells(idx)).reshape(6, 14, 14, 2, 2, 8, 8).transpose(0, 1, 3, 2, 4, 5, 6)
    drawn = table.patterns[maps.astype(np.int64)]  # (6, 28, 28, 8, 8)
    exact = (drawn == slots.reshape(6, 28, 28, 8, 8)).all((-1, -2))
    assert exact.all(), "fake screens draw from 6 metatiles a screen: every quarter is in the table"
    assert np.array_equal(pattern_maps(idx, table.patterns, chunk=4, slots=slot_cells(idx)), maps)
    again = learn_table(idx, slots=slot_cells(idx))  # the slots read once, as train reads them
    assert np.array_equal(learn_table(idx).patterns, again.patterns)
    odd = idx[:1].copy()
    odd[0, :8, :8] = (np.arange(64).reshape(8, 8) % 3 == 0) * 5 + 1  # a pattern no screen shows
    got = pattern_maps(odd, table.patterns)[0, 0, 0]
    want = quadrants(slot_cells(odd))[0].reshape(-1)
    misses = (table.patterns.reshape(len(table.patterns), -1) != want).sum(1)
    assert misses[got] == misses.min(), "a pattern the table lacks reads as its nearest"


def test_ds_pattern_critic_judges_the_pattern_map_beside_the_screen(table):
    from nesgan.gan.model import Discriminator

    torch.manual_seed(0)
    d = Discriminator(4, "patterns", critic=len(table.patterns)).eval()  # eval: no power iteration per call
    x = torch.randn(4, 3, 224, 224)
    picks = torch.randint(0, len(table.patterns), (4, 28, 28))
    both = d(x, picks)
    assert both.shape == (4, 2) and torch.equal(both[:, 0], d(x)), "column 0 is the screen's verdict"
    assert not torch.allclose(d(x, picks.roll(1, dims=1))[:, 1], both[:, 1]), "it reads where each pattern sits"
    soft = torch.softmax(torch.randn(4, 28, 28, len(table.patterns)), -1).requires_grad_()
    through = d(x, picks, soft)
    assert torch.allclose(through, both), "straight-through: the soft picks change the gradient, not the value"
    through[:, 1].sum().backward()
    assert soft.grad.abs().sum() > 0
    assert Discriminator(4, "patterns").critic is None


def test_the_usage_prior_row_by_row_reads_each_row_of_the_training_maps(table):
    g = _generator(table)
    k = len(table.patterns)
    maps = torch.zeros(3, 28, 28, dtype=torch.int16)
    maps[:, :14] = 5  # sky above: pattern 5 in the top 14 rows, pattern 0 below
    maps[0, 27, :7] = 2  # a quarter of one screen's bottom row
    g.head.set_row_usage(maps)
    usage = g.head.row_usage
    assert usage.shape == (28, k) and torch.allclose(usage.sum(1), torch.ones(28))
    assert usage[0, 5] == 1 and usage[20, 0] == 1 and torch.isclose(usage[27, 2], torch.tensor(7 / 84))
    assert "row_usage" not in g.state_dict(), "derived from the screens again, never saved"
    picks = torch.full((2, 28, 28, k), 1e-6)
    picks[:, :14, :, 5] = picks[:, 14:, :, 0] = 1.0  # sky above, ground below: as trained
    picks = picks / picks.sum(-1, keepdim=True)
    flipped = picks.flip(1)  # the same patterns upside down: the same use over the whole screen
    g.head.seam_weight = 0.0
    assert g.head._priors(flipped) > g.head._priors(picks) + 5, "row by row, upside down is far off"
    g.head.row_usage = None
    assert torch.isclose(g.head._priors(flipped), g.head._priors(picks)), "over the screen it is not"


def test_the_cell_prior_counts_whole_cells_and_pulls_g_toward_the_cells_it_never_draws(table):
    from nesgan.gan.model import CELL_WHOLE

    g = _generator(table)
    k = len(table.patterns)
    maps = torch.zeros(4, 28, 28, dtype=torch.int16)  # every cell's quarters (5, 6, 7, 8) …
    maps[:, 0::2, 0::2], maps[:, 0::2, 1::2], maps[:, 1::2, 0::2], maps[:, 1::2, 1::2] = 5, 6, 7, 8
    maps[0, :2, :2] = torch.tensor([[9, 10], [11, 12]])  # … but one "? block" (9, 10, 11, 12)
    g.head.set_cell_usage(maps, 2.0, CELL_WHOLE, size=3)
    offsets = torch.arange(4) * k  # quarter q's pattern p is row q·K + p of `_cell_prior`'s layout
    assert (g.head.cell_rows[0, :2] - offsets).tolist() == [[5, 6, 7, 8], [9, 10, 11, 12]]
    assert g.head.cell_mask.tolist() == [[True, True, False]], "two kinds: the third is padding"
    total = 4 * 14 * 14
    assert torch.allclose(g.head.cell_usage, torch.tensor([[(total - 1) / total, 1 / total, 0.0, 0.0]]))
    assert not {"cell_rows", "cell_usage", "cell_mask"} & set(g.state_dict())
    g.head.set_cell_usage(maps, 2.0, CELL_WHOLE, size=1)  # the commonest only: the block is in the rest
    assert torch.allclose(g.head.cell_usage, torch.tensor([[(total - 1) / total, 1 / total]]))

    g.head.set_cell_usage(maps, 2.0, CELL_WHOLE)
    as_trained = torch.nn.functional.one_hot(maps.long(), k).float()
    assert float(g.head._cell_prior(torch.log(as_trained.clamp_min(1e-30)))) == pytest.approx(0.0, abs=1e-6)
    # G's soft picks: every cell the common one, all but surely: the block is never drawn
    logits = torch.full((4, 28, 28, k), -4.0)
    logits[..., 5:13] = 0.0
    logits[:, 0::2, 0::2, 5] = logits[:, 0::2, 1::2, 6] = logits[:, 1::2, 0::2, 7] = logits[:, 1::2, 1::2, 8] = 12.0
    logits.requires_grad_(True)
    never = g.head._cell_prior(torch.log_softmax(logits, -1))
    assert never > 0
    never.backward()
    # the gradient raises the block's quarters where they belong, in every cell alike
    step = -logits.grad
    assert (step[:, 0::2, 0::2, 9] > 0).all() and (step[:, 1::2, 1::2, 12] > 0).all()
    assert (step[:, 0::2, 0::2, 12] <= 0).all(), "a quarter in the wrong place is not raised"
    # and the prior weighs cell_weight in G's loss
    g.head.seam_weight = g.head.usage_weight = 0.0
    p = torch.softmax(logits.detach(), -1)
    cells = float(g.head._cell_prior(torch.log_softmax(logits.detach(), -1)))
    assert float(g.head._priors(p, logits.detach())) == pytest.approx(2.0 * cells, rel=1e-5)
    assert float(g.head._priors(p)) == pytest.approx(2.0 * cells, rel=1e-4), "from the picks alone, the same"
    g.head.cell_weight = 0.0
    assert float(g.head._priors(p)) == 0.0


def test_the_cell_prior_over_halves_lets_known_halves_meet_in_new_cells(table):
    g = _generator(table)
    k = len(table.patterns)
    maps = torch.zeros(2, 28, 28, dtype=torch.int16)
    maps[:, 0::2, 0::2], maps[:, 0::2, 1::2], maps[:, 1::2, 0::2], maps[:, 1::2, 1::2] = 5, 6, 7, 8  # cell A
    maps[1, :, 14:] = torch.tensor([[9, 10], [11, 12]]).repeat(14, 7)  # cell B on half of one screen
    g.head.set_cell_usage(maps, 1.0)  # the default: the four halves
    assert g.head.cell_rows.shape[:2] == (4, 512) and g.head.cell_mask.sum(1).tolist() == [2, 2, 2, 2]
    assert torch.allclose(g.head.cell_usage[:, :2], torch.tensor([[0.75, 0.25]] * 4))

    def prior(cells: torch.Tensor) -> float:  # (B, 14, 14, 4) quarters' patterns → the prior of those picks
        m = torch.zeros(cells.shape[0], 28, 28, dtype=torch.long)
        m[:, 0::2, 0::2], m[:, 0::2, 1::2], m[:, 1::2, 0::2], m[:, 1::2, 1::2] = cells.unbind(-1)
        return float(g.head._cell_prior(torch.log(torch.nn.functional.one_hot(m, k).float().clamp_min(1e-30))))

    a, b = torch.tensor([5, 6, 7, 8]), torch.tensor([9, 10, 11, 12])
    as_trained = torch.stack([a.expand(14, 14, 4), torch.cat([a.expand(14, 7, 4), b.expand(14, 7, 4)], 1)])
    assert prior(as_trained) == pytest.approx(0.0, abs=1e-6)
    # A's top half over B's bottom half in a quarter of the cells: the top and bottom halves are
    # the art's in the art's shares, only the left and right halves are new
    mixed = as_trained.clone()
    mixed[0, :, :7] = torch.tensor([5, 6, 11, 12])
    mixed[1, :, 7:] = torch.tensor([9, 10, 7, 8])
    scrambled = as_trained.clone()  # the same cells, but patterns no training cell shows
    scrambled[0, :, :7] = torch.tensor([13, 14, 15, 16])
    scrambled[1, :, 7:] = torch.tensor([17, 18, 19, 20])
    assert 0 < prior(mixed) < prior(scrambled)


def test_cell_chances_match_autograd_in_value_and_gradient():
    import math

    from nesgan.gan.model import CellChances

    torch.manual_seed(0)
    logs = torch.log_softmax(torch.randn(4, 50, 16) * 3, -1).transpose(1, 2).reshape(64, 50).requires_grad_(True)
    rows = torch.randint(0, 16, (30, 4)) + torch.arange(4) * 16
    weights = torch.randn(30)
    plain = logs.index_select(0, rows[:, 0])
    for i in range(1, 4):
        plain = plain + logs.index_select(0, rows[:, i])
    plain = torch.logsumexp(plain, 1) - math.log(50)
    (want,) = torch.autograd.grad((plain * weights).sum(), logs)
    fast = CellChances.apply(logs, rows)
    (got,) = torch.autograd.grad((fast * weights).sum(), logs)
    assert torch.allclose(fast, plain, atol=1e-5) and torch.allclose(got, want, atol=1e-6)


def test_quarter_rows_are_the_permuted_copy_in_value_and_gradient():
    from nesgan.gan.model import QuarterRows

    torch.manual_seed(1)
    for b, hh, k in ((3, 28, 256), (2, 6, 5)):  # tiny's layout, and blocks of a single cell row
        x = torch.randn(b, hh, hh, k, requires_grad=True)
        plain = x.view(b, hh // 2, 2, hh // 2, 2, k).permute(2, 4, 5, 0, 1, 3).reshape(4 * k, -1)
        weights = torch.randn(plain.shape)
        (want,) = torch.autograd.grad((plain * weights).sum(), x)
        got_rows = QuarterRows.apply(x)
        (got,) = torch.autograd.grad((got_rows * weights).sum(), x)
        assert torch.equal(got_rows, plain) and torch.equal(got, want)


def test_the_patterns_generator_hands_d_its_picks_and_their_soft_weights(table):
    g = _generator(table)
    screen = g.train()(torch.randn(2, 16))
    index, soft = g.head.picked
    assert index.shape == (2, 28, 28) and soft.shape == (2, 28, 28, len(table.patterns))
    assert torch.equal(index, soft.detach().argmax(-1)), "training picks are the plain argmax"
    # the picks D's critic judges are what G drew: each quarter shows one colour per slot of its pattern
    slots = table.patterns[index.numpy()].reshape(2, 28, 28, 64)
    rgb = screen.detach().reshape(2, 3, 28, 8, 28, 8).permute(0, 2, 4, 3, 5, 1).reshape(2, 28, 28, 64, 3).numpy()
    first = (slots[..., None, :] == np.arange(4)[:, None]).argmax(-1)  # (2, 28, 28, 4): first pixel of each slot
    same_as_first = np.take_along_axis(rgb, np.take_along_axis(first, slots, -1)[..., None], -2)
    assert np.array_equal(rgb, same_as_first)
    soft[..., 5].sum().backward()
    assert g.head.pattern.weight.grad.abs().sum() > 0, "the critic's verdict reaches the pattern head"
