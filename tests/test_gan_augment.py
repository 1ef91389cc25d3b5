"""D's augmentation (shift + cut-out): exact pixel moves, black fill, seeded, differentiable."""

import torch

from nesgan.gan import augment
from nesgan.gan.augment import Draw


def _one(dx: int, dy: int, cx: int = -500, cy: int = -500) -> Draw:
    return Draw(*(torch.tensor([v]) for v in (dx, dy, cx, cy)))


def test_a_shift_moves_every_pixel_exactly_and_fills_what_it_uncovers_with_black():
    x = torch.rand(1, 3, 224, 224) * 2 - 1
    y = augment.apply(x, _one(dx=5, dy=-3))
    assert torch.equal(y[0, :, :221, 5:], x[0, :, 3:, :219])
    assert (y[0, :, :, :5] == -1).all() and (y[0, :, 221:, :] == -1).all()
    y = augment.apply(x, _one(dx=-28, dy=28))
    assert torch.equal(y[0, :, 28:, :196], x[0, :, :196, 28:])


def test_a_cut_out_blacks_out_a_half_side_square_clipped_at_the_border():
    x = torch.rand(1, 3, 224, 224) * 2 - 1
    y = augment.apply(x, _one(0, 0, cx=150, cy=-40))
    cut = torch.zeros(224, 224, dtype=torch.bool)
    cut[0:72, 150:224] = True  # rows -40..71 and columns 150..261, clipped
    assert (y[0, :, cut] == -1).all()
    assert torch.equal(y[0, :, ~cut], x[0, :, ~cut])


def test_augmented_screens_keep_only_the_colours_they_had_plus_black():
    from nesgan.gan.data import fake_screens, to_float, to_uint8

    real = torch.from_numpy(fake_screens(8, seed=1))
    before = {tuple(p) for p in real.reshape(-1, 3).tolist()}
    y = augment.apply(to_float(real), augment.draw(8, 224, torch.Generator().manual_seed(0)))
    after = {tuple(p) for p in to_uint8(y).reshape(-1, 3).tolist()}
    assert after <= before | {(0, 0, 0)}


def test_draws_are_seeded_stay_in_range_and_split_by_rank():
    a = augment.draw_step(16, 224, torch.Generator().manual_seed(5))
    b = augment.draw_step(16, 224, torch.Generator().manual_seed(5))
    for d in (a.real, a.fake, a.gen):
        assert d.dx.abs().max() <= 28 and d.dy.abs().max() <= 28
        assert d.cx.min() >= -56 and d.cx.max() <= 224 - 56
    assert all(torch.equal(getattr(a.real, f), getattr(b.real, f)) for f in ("dx", "dy", "cx", "cy"))
    assert not torch.equal(a.real.dx, a.fake.dx)
    half = a.part(8, 16)
    assert torch.equal(half.gen.cy, a.gen.cy[8:16]) and len(half.real.dx) == 8


def test_gradients_reach_the_pixels_d_still_sees_and_only_those():
    x = torch.zeros(1, 3, 224, 224, requires_grad=True)
    augment.apply(x, _one(dx=10, dy=0, cx=0, cy=0)).sum().backward()
    seen = torch.ones(224, 224)
    seen[:, 214:] = 0  # shifted out on the right
    seen[:112, :102] = 0  # under the cut-out (output columns 0..111 read input columns -10..101)
    assert torch.equal(x.grad[0, 0], seen)
