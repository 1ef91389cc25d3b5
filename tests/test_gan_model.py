"""The DCGAN networks, EMA, sampler, SWD and config checks (no training loop)."""

import pytest
import torch

from nesgan.errors import NesganError
from nesgan.gan import swd
from nesgan.gan.config import TrainConfig, check_resumable, resolve_train_config
from nesgan.gan.data import EpochSampler, fake_screens, to_float, to_uint8
from nesgan.gan.model import Discriminator, Generator, build_models, ema_decay_at, ema_update
from nesgan.gan.train import pick_autocast


def test_generator_maps_noise_to_224_pixel_screens_in_tanh_range():
    g = Generator(width=4, z_dim=100)
    x = g(torch.randn(2, 100))
    assert x.shape == (2, 3, 224, 224)
    assert x.min() >= -1 and x.max() <= 1


def test_generator_channels_run_8w_8w_4w_2w_w_from_7_to_112_pixels():
    g = Generator(width=4)
    shapes = []
    x = torch.randn(2, 100, 1, 1)
    for layer in g.net:
        x = layer(x)
        if isinstance(layer, torch.nn.ReLU):
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(32, 7, 7), (32, 14, 14), (16, 28, 28), (8, 56, 56), (4, 112, 112)]


def test_discriminator_gives_one_logit_per_screen_and_mirrors_the_widths():
    d = Discriminator(width=4)
    assert d(torch.randn(3, 3, 224, 224)).shape == (3,)
    convs = [m.out_channels for m in d.net if isinstance(m, torch.nn.Conv2d)]
    assert convs == [4, 8, 16, 32, 32, 1]
    assert not isinstance(d.net[1], torch.nn.BatchNorm2d)  # none on the first layer


def test_dcgan_init_draws_conv_weights_from_normal_with_std_0_02():
    torch.manual_seed(0)
    g, _ = build_models(8, 100)
    w = g.net[3].weight  # (8W, 8W, 4, 4): 64·64·16 samples
    assert abs(w.std().item() - 0.02) < 0.001
    assert abs(w.mean().item()) < 0.001


def test_same_seed_builds_identical_networks():
    torch.manual_seed(3)
    g1, d1 = build_models(4, 100)
    torch.manual_seed(3)
    g2, d2 = build_models(4, 100)
    assert all(torch.equal(a, b) for a, b in zip(g1.state_dict().values(), g2.state_dict().values(), strict=True))


def test_ema_update_moves_weights_and_running_stats_toward_the_model():
    g, ema = Generator(4), Generator(4)
    with torch.no_grad():
        for p in g.parameters():
            p.fill_(1.0)
        for p in ema.parameters():
            p.fill_(0.0)
        g.net[1].running_mean.fill_(2.0)
        ema.net[1].running_mean.fill_(0.0)
        g.net[1].num_batches_tracked.fill_(7)
    ema_update(ema, g, decay=0.75)
    assert torch.allclose(next(ema.parameters()), torch.full_like(next(ema.parameters()), 0.25))
    assert torch.allclose(ema.net[1].running_mean, torch.full((32,), 0.5))
    assert ema.net[1].num_batches_tracked.item() == 7


def test_ema_decay_warms_up_then_holds_the_configured_value():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.999) == 0.999


def test_sampler_shows_every_screen_once_per_epoch_across_batches():
    s = EpochSampler(10, seed=1)
    first = torch.cat([s.next(4), s.next(4), s.next(2)])
    assert sorted(first.tolist()) == list(range(10))
    assert s.epoch == 0
    s.next(3)
    assert s.epoch == 1


def test_sampler_state_round_trip_continues_the_same_order():
    a = EpochSampler(7, seed=5)
    a.next(5)
    b = EpochSampler(7, seed=5)
    b.load_state_dict(a.state_dict())
    assert torch.equal(torch.cat([a.next(6) for _ in range(3)]), torch.cat([b.next(6) for _ in range(3)]))


def test_sampler_refuses_a_state_from_a_different_number_of_screens():
    a = EpochSampler(7, seed=5)
    with pytest.raises(NesganError, match="7 screens"):
        EpochSampler(8, seed=5).load_state_dict(a.state_dict())


def test_batches_convert_to_minus_one_one_channels_last_and_back_exactly():
    u8 = torch.from_numpy(fake_screens(2, seed=3))
    x = to_float(u8)
    assert x.shape == (2, 3, 224, 224) and x.min() >= -1 and x.max() <= 1
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert (to_uint8(x) == u8.numpy()).all()


def test_fake_screens_obey_four_colours_per_screen():
    import numpy as np

    s = fake_screens(3, seed=0)
    assert s.shape == (3, 224, 224, 3) and s.dtype == np.uint8
    assert all(len(np.unique(x.reshape(-1, 3), axis=0)) <= 4 for x in s)


def test_laplacian_pyramid_has_levels_from_224_down_to_28():
    levels = swd.laplacian_pyramid(torch.zeros(1, 3, 224, 224))
    assert [lv.shape[-1] for lv in levels] == [224, 112, 56, 28]


def test_swd_is_near_zero_for_one_set_and_larger_for_a_different_one():
    real = to_float(torch.from_numpy(fake_screens(8, seed=0)))
    same = swd.swd(swd.descriptors(real), swd.descriptors(real))
    noise = swd.swd(swd.descriptors(real), swd.descriptors(torch.rand(8, 3, 224, 224) * 2 - 1))
    assert max(same) < 1e-6
    assert min(noise) > 10 * max(max(same), 1.0)


def test_swd_against_kept_sorted_projections_of_the_real_set_is_the_same_number():
    real = swd.descriptors(to_float(torch.from_numpy(fake_screens(8, seed=0))), seed=2)
    fake = swd.descriptors(torch.rand(8, 3, 224, 224) * 2 - 1, seed=2)
    kept = [swd.projections(d, d.shape[0], 2) for d in real]  # what a training run keeps
    assert swd.swd(real, fake, seed=2, real_sorted=kept) == swd.swd(real, fake, seed=2)
    fewer = [f[: len(f) // 2] for f in fake]  # n differs from the kept one's: sorted afresh
    assert swd.swd(real, fewer, seed=2, real_sorted=kept) == swd.swd(real, fewer, seed=2)


def test_precision_choice_honours_explicit_requests():
    cpu = torch.device("cpu")
    assert pick_autocast(cpu, "fp32") is None
    assert pick_autocast(cpu, "bf16") is torch.bfloat16


def test_presets_fill_unset_values_and_flags_override_them():
    c = resolve_train_config("small", width=5, steps=None)
    assert c.width == 5 and c.batch_size == 32 and c.preset == "small"


def test_resume_check_names_the_flag_and_both_values():
    saved = TrainConfig(width=8)
    with pytest.raises(NesganError, match="--width 16 differs from the run's 8"):
        check_resumable(saved, TrainConfig(width=16))
    check_resumable(saved, TrainConfig(width=8, steps=9999, sample_every=3))  # allowed changes


def test_config_rejects_nonsense_values_with_the_flag_name():
    with pytest.raises(NesganError, match="--batch-size"):
        TrainConfig(batch_size=0)


def test_generator_lr_is_lr_unless_lr_g_sets_its_own():
    assert TrainConfig(lr=3e-4).generator_lr == 3e-4
    assert TrainConfig(lr=3e-4, lr_g=1e-3).generator_lr == 1e-3
    with pytest.raises(NesganError, match="lr_g must be positive"):
        TrainConfig(lr_g=0.0)


def test_run_config_written_before_lr_g_existed_still_loads_with_one_shared_lr():
    d = TrainConfig().to_dict()
    del d["lr_g"]
    assert TrainConfig.from_dict(d).generator_lr == d["lr"]


def test_discriminator_sees_fake_contrast_only_when_batched_with_real_screens():
    # Why train_step feeds D one real+fake batch: D has no biases, so with a pure fake batch
    # its BatchNorm divides any overall contrast away and G gets no push out of flat grey.
    torch.manual_seed(0)
    _, d = build_models(4, 100)
    d.train()
    real = to_float(torch.from_numpy(fake_screens(4, seed=1)))  # (4, 3, 224, 224)
    fake = torch.randn(4, 3, 224, 224) * 0.5
    with torch.no_grad():
        alone = d(fake), d(fake * 3)
        mixed = d(torch.cat([real, fake]))[4:], d(torch.cat([real, fake * 3]))[4:]
    seen_alone = (alone[0] - alone[1]).abs().max()  # only BatchNorm's eps lets it through
    seen_mixed = (mixed[0] - mixed[1]).abs().max()
    assert seen_alone < 0.03 and seen_mixed > 5 * seen_alone


def test_generator_step_judges_fakes_by_the_mixed_batch_statistics_of_ds_step():
    # train_step's G step runs D in eval mode on the fakes alone. BatchNorm momentum 1.0 makes D's
    # running statistics those of its last training batch, so the fakes are normalised as they
    # were inside step 1's real+fake batch (up to the running variance being the unbiased one),
    # not by a batch of their own.
    torch.manual_seed(0)
    _, d = build_models(4, 100)
    real = to_float(torch.from_numpy(fake_screens(4, seed=1)))  # (4, 3, 224, 224)
    fake = torch.randn(4, 3, 224, 224) * 0.5
    with torch.no_grad():
        d.train()
        mixed = d(torch.cat([real, fake]))[4:]
        d.eval()
        frozen = d(fake)
        d.train()
        own_batch = d(fake)
    err = (frozen - mixed).abs().max()
    assert err < 0.01 * mixed.abs().max()
    assert (own_batch - mixed).abs().max() > 20 * err


def test_train_step_updates_both_networks_and_leaves_d_trainable():
    from nesgan.gan.step import Nets, adam, train_step

    torch.manual_seed(0)
    g, d = build_models(4, 100)
    ema = Generator(4, 100).eval().requires_grad_(False)
    ema.load_state_dict(g.state_dict())
    nets = Nets(g=g, d=d, ema=ema, opt_g=adam(g.parameters(), 1e-3, (0.5, 0.999)),
                opt_d=adam(d.parameters(), 1e-3, (0.5, 0.999)), g_train=g, d_train=d, d_plain=d)
    g0 = [p.detach().clone() for p in g.parameters()]
    d0 = [p.detach().clone() for p in d.parameters()]
    real = to_float(torch.from_numpy(fake_screens(4, seed=2)))
    out = train_step(nets, real, torch.randn(4, 100), 0)
    assert all(not torch.equal(a, b) for a, b in zip(g0, g.parameters(), strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(d0, d.parameters(), strict=True))
    assert d.training and all(p.requires_grad for p in d.parameters())
    assert torch.isfinite(out.loss_g) and torch.isfinite(out.loss_d_real + out.loss_d_fake)


# --- architectures ------------------------------------------------------------------------------

class _DcganGeneratorBeforeArch(torch.nn.Module):
    """The generator exactly as nesgan shipped it before --arch existed (frozen copy)."""

    def __init__(self, width: int = 64, z_dim: int = 100):
        super().__init__()
        w = width
        self.z_dim = z_dim
        nn = torch.nn

        def up(cin, cout):
            return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 8 * w, 7, 1, 0, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU(True),
            *up(8 * w, 8 * w), *up(8 * w, 4 * w), *up(4 * w, 2 * w), *up(2 * w, w),
            nn.ConvTranspose2d(w, 3, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class _DiscriminatorBeforeArch(torch.nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        nn = torch.nn

        def down(cin, cout):
            return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout, momentum=1.0),
                    nn.LeakyReLU(0.2, True)]

        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            *down(w, 2 * w), *down(2 * w, 4 * w), *down(4 * w, 8 * w), *down(8 * w, 8 * w),
            nn.Conv2d(8 * w, 1, 7, 1, 0, bias=False))

    def forward(self, x):
        return self.net(x).flatten()


def test_arch_dcgan_builds_the_network_of_before_with_the_same_weights_and_outputs():
    from nesgan.gan.model import dcgan_init

    torch.manual_seed(11)
    g, d = build_models(4, 100, "dcgan")
    torch.manual_seed(11)
    old_g, old_d = _DcganGeneratorBeforeArch(4, 100), _DiscriminatorBeforeArch(4)
    old_g.apply(dcgan_init)
    old_d.apply(dcgan_init)
    for new, old in ((g, old_g), (d, old_d)):
        a, b = new.state_dict(), old.state_dict()
        assert list(a) == list(b), "same parameter names: old checkpoints load"
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert sum(p.numel() for p in g.parameters()) == 184312  # width 4, z 100
    z = torch.randn(3, 100, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(g(z), old_g(z))
        assert torch.equal(d(g(z)), old_d(old_g(z)))


def test_upsample_generator_resizes_then_convolves_at_every_doubling_up_to_224():
    from nesgan.gan.model import ResizeConv

    g = Generator(width=4, z_dim=100, arch="upsample")
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) and m.stride != (1, 1) for m in g.modules())
    shapes, x = [], torch.randn(2, 100, 1, 1)
    for layer in g.net:
        x = layer(x)
        shapes.append((type(layer).__name__, tuple(x.shape[1:])))
    assert shapes == [
        ("ConvTranspose2d", (32, 7, 7)), ("BatchNorm2d", (32, 7, 7)), ("ReLU", (32, 7, 7)),
        ("ResizeConv", (32, 14, 14)), ("BatchNorm2d", (32, 14, 14)), ("ReLU", (32, 14, 14)),
        ("ResizeConv", (16, 28, 28)), ("BatchNorm2d", (16, 28, 28)), ("ReLU", (16, 28, 28)),
        ("ResizeConv", (8, 56, 56)), ("BatchNorm2d", (8, 56, 56)), ("ReLU", (8, 56, 56)),
        ("ResizeConv", (4, 112, 112)), ("BatchNorm2d", (4, 112, 112)), ("ReLU", (4, 112, 112)),
        ("ResizeConv", (3, 224, 224)), ("Tanh", (3, 224, 224)),
    ]
    assert x.min() >= -1 and x.max() <= 1
    assert all(m.weight.shape[2:] == (3, 3) for m in g.modules() if isinstance(m, ResizeConv))


def test_resize_conv_is_a_nearest_resize_then_a_3x3_convolution_in_value_and_gradient():
    import torch.nn.functional as F

    from nesgan.gan.model import ResizeConv

    torch.manual_seed(0)
    layer = ResizeConv(5, 3).double()  # float64: only the summation order differs
    x = torch.randn(2, 5, 9, 7, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    want = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), layer.weight, padding=1)
    assert y.shape == (2, 3, 18, 14) and torch.allclose(y, want, atol=1e-10)
    (gx, gw), (wx, ww) = (torch.autograd.grad((out * torch.arange(14.0)).sum(), (x, layer.weight))
                          for out in (y, want))
    assert torch.allclose(gx, wx, atol=1e-9) and torch.allclose(gw, ww, atol=1e-9)


def test_upsample_generator_draws_no_checkerboard_at_initialisation():
    # Odena et al.'s observation, measured: transposed convs give the 2×2 pixel phases unequal
    # brightness from the start; resize + conv gives them the same statistics.
    def phase_spread(arch: str) -> float:
        torch.manual_seed(0)
        g, _ = build_models(4, 100, arch)
        with torch.no_grad():
            x = g(torch.randn(8, 100)).abs()  # train mode: batch statistics
        phases = torch.stack([x[..., a::2, b::2].mean() for a in (0, 1) for b in (0, 1)])
        return (phases.std() / phases.mean()).item()

    assert phase_spread("dcgan") > 4 * phase_spread("upsample")  # measured 0.31 against 0.044


def test_minibatch_std_of_a_real_group_ignores_the_fake_half_of_ds_batch():
    from nesgan.gan.model import MinibatchStd

    layer = MinibatchStd(group=2)
    real, fake = torch.randn(2, 5, 7, 7), torch.randn(2, 5, 7, 7)
    a = layer(torch.cat([real, fake]))
    b = layer(torch.cat([real, fake * 10]))
    assert a.shape == (4, 6, 7, 7)
    assert torch.equal(a[:2, 5], b[:2, 5]) and not torch.equal(a[2:, 5], b[2:, 5])
    same = layer(torch.cat([real[:1], real[:1]]))
    assert same[:, 5].abs().max() < 1e-3  # two identical screens: no spread


def test_minibatch_std_is_the_groups_population_standard_deviation():
    from nesgan.gan.model import MinibatchStd

    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5, requires_grad=True)
    out = MinibatchStd(group=4)(x)
    ref = (x.view(2, 4, 3, 5, 5).var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))
    assert torch.allclose(out[:, 3, 0, 0], ref.repeat_interleave(4), atol=1e-6)
    assert torch.equal(out[:, :3], x)
    (grad,) = torch.autograd.grad(out[:, 3].sum(), x)
    (grad_ref,) = torch.autograd.grad(ref.repeat_interleave(4).sum() * 25, x)
    assert torch.allclose(grad, grad_ref, atol=1e-5)


def test_upsample_discriminator_sees_the_batch_spread_before_its_last_layer():
    from nesgan.gan.model import MinibatchStd

    d = Discriminator(width=4, arch="upsample", group=2)
    assert isinstance(d.net[-2], MinibatchStd) and d.net[-1].in_channels == 33
    assert d(torch.randn(4, 3, 224, 224)).shape == (4,)


def test_every_arch_name_the_cli_offers_has_a_network():
    from nesgan.gan.config import ARCH_NAMES
    from nesgan.gan.model import ARCHS

    assert set(ARCH_NAMES) == set(ARCHS) and ARCH_NAMES[0] == "patterns"


def test_run_config_written_before_arch_existed_loads_as_the_dcgan_it_trained():
    d = TrainConfig().to_dict()
    del d["arch"]
    assert TrainConfig.from_dict(d).arch == "dcgan"
    assert TrainConfig().arch == "patterns"
    with pytest.raises(NesganError, match="unknown --arch 'wgan'"):
        TrainConfig(arch="wgan")


# --- the nes architecture: screens the PPU could show --------------------------------------------

def _nes_colour_sets(x: torch.Tensor) -> list:
    """(B, 3, 224, 224) in [-1, 1] → per screen, per 16×16 cell, the set of RGB triples."""
    rgb = to_uint8(x)  # (B, 224, 224, 3)
    out = []
    for s in rgb:
        cells = s.reshape(14, 16, 14, 16, 3).transpose(0, 2, 1, 3, 4).reshape(196, 256, 3)
        out.append([{tuple(p) for p in c.tolist()} for c in cells])
    return out


def test_nes_generator_draws_one_backdrop_four_subpalettes_and_one_per_16px_cell():
    from nesgan.colour.palette import EMITTABLE, Palette

    torch.manual_seed(3)
    g = Generator(width=4, z_dim=100, arch="nes")
    with torch.no_grad():  # random weights far from init, so that every choice varies
        for p in g.parameters():
            p.normal_(0, 1)
    g.eval()
    z = torch.randn(6, 100)
    with torch.no_grad():
        x = g(z)
        seed = g.seed(z.view(6, 100, 1, 1))
        palette = g.head.palette(seed.mean(dim=(2, 3))).view(6, 13, 54).argmax(-1)  # (6, 13)
        attribute = g.head.attribute(g.cells(seed)).argmax(1)  # (6, 14, 14)
    assert x.shape == (6, 3, 224, 224)
    rgb = Palette.builtin().rgb[EMITTABLE]  # (54, 3)
    nes = {tuple(c) for c in rgb.tolist()}
    used_subpalettes = set()
    for s, cells in enumerate(_nes_colour_sets(x)):
        screen = set().union(*cells)
        assert screen <= nes and len(screen) <= 13
        assert max(len(c) for c in cells) <= 4
        backdrop = tuple(rgb[palette[s, 0]].tolist())
        for i, cell in enumerate(cells):
            j = int(attribute[s, i // 14, i % 14])
            used_subpalettes.add(j)
            allowed = {backdrop} | {tuple(rgb[palette[s, 1 + 3 * j + k]].tolist()) for k in range(3)}
            assert cell <= allowed, (s, i)
    assert len(used_subpalettes) > 1  # the test saw cells of different sub-palettes


def test_nes_generator_is_palette_exact_in_training_too_and_every_choice_gets_a_gradient():
    torch.manual_seed(0)
    g, d = build_models(4, 100, "nes")
    g.train()
    x = g(torch.randn(4, 100))
    from nesgan.colour.palette import EMITTABLE, Palette

    nes = {tuple(c) for c in Palette.builtin().rgb[EMITTABLE].tolist()}
    assert {tuple(p) for p in to_uint8(x).reshape(-1, 3).tolist()} <= nes  # straight-through: hard forward
    d(x).sum().backward()
    head = g.head
    for name, p in (("palette", head.palette.weight), ("attribute", head.attribute.weight),
                    ("slot", head.slot.weight), ("trunk", g.pixels[0].weight)):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
