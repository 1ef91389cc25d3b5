"""gan/snapshots.py: a checkpoint at every sample step, and `nesgan generate --step N`."""

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from nesgan.cli import cli
from nesgan.files import read_jsonl
from nesgan.gan.data import write_fake_screens
from nesgan.gan.snapshots import (
    BEST,
    MIN_DIVERSITY,
    best_step,
    best_steps,
    describe_steps,
    keep_best,
    run_steps,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("snap")
    write_fake_screens(root / "screens", 4, seed=1)
    r = CliRunner().invoke(cli, ["train", "--data", str(root / "screens"), "--run", str(root / "run"),
                                 "--width", "4", "--batch-size", "2", "--steps", "60",
                                 "--sample-every", "20", "--checkpoint-every", "60",
                                 "--precision", "fp32", "--swd-images", "4"])
    assert r.exit_code == 0, r.output
    return root / "run"


def generate(*args: str):
    return CliRunner().invoke(cli, ["generate", *args])


def test_a_run_keeps_a_checkpoint_at_every_sample_step_and_only_the_generator_between(run):
    ckpt = run / "checkpoints"
    assert run_steps(run) == [20, 40, 60]
    assert sorted(p.name for p in (run / "samples").glob("step-*.png")) == [
        f"step-{s:06d}.png" for s in (20, 40, 60)]
    slim = torch.load(ckpt / "step-000040.pt", weights_only=True)
    full = torch.load(ckpt / "step-000060.pt", weights_only=True)
    assert slim["step"] == 40 and set(slim) == {"format", "step", "config", "ema", "generator_only"}
    assert "opt_g" in full and full["step"] == 60
    assert (ckpt / "step-000040.pt").stat().st_size * 3 < (ckpt / "step-000060.pt").stat().st_size


def test_generate_step_uses_that_steps_generator(run, tmp_path):
    # 40 and 60 steps: the default arch's screens, in NES colours, are one flat grey until ~40
    r = generate("--run", str(run), "-n", "2", "--out", str(tmp_path / "s2"), "--step", "40")
    assert r.exit_code == 0, r.output
    rows = read_jsonl(tmp_path / "s2" / "manifest.jsonl")
    assert {row["step"] for row in rows} == {40} and rows[0]["checkpoint"].endswith("step-000040.pt")
    r = generate("--run", str(run), "-n", "2", "--out", str(tmp_path / "last"), "--checkpoint", "last.pt")
    assert r.exit_code == 0, r.output
    a = np.asarray(Image.open(tmp_path / "s2" / "gen-0000.png"))
    b = np.asarray(Image.open(tmp_path / "last" / "gen-0000.png"))
    assert not np.array_equal(a, b), "step 40's generator is not the last one"
    path = run / "checkpoints" / "step-000040.pt"
    r = generate("--run", str(run), "-n", "2", "--out", str(tmp_path / "p"), "--checkpoint", str(path))
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p" / "gen-0000.png")), a)


def test_a_missing_step_is_one_line_naming_the_steps_the_run_has(run, tmp_path):
    r = generate("--run", str(run), "--out", str(tmp_path / "g"), "--step", "7")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "no checkpoint at step 7" in r.output and "20, 40, 60" in r.output
    r = generate("--run", str(tmp_path / "nothing"), "--out", str(tmp_path / "g"), "--step", "7")
    assert r.exit_code == 1 and "no step checkpoints" in r.output
    r = generate("--run", str(run), "--step", "40", "--checkpoint", "last.pt")
    assert r.exit_code == 2


def test_generate_help_lists_the_steps_of_the_run_given_before_it(run):
    r = generate("--run", str(run), "--help")
    assert r.exit_code == 0 and f"Steps with a checkpoint in {run}: 20, 40, 60." in " ".join(r.output.split())
    assert "Put --run RUN before --help" in " ".join(generate("--help").output.split())


def test_describe_steps_shortens_long_lists():
    assert describe_steps([]) == "none"
    assert describe_steps(list(range(200, 2200, 200))) == "200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800, 2000"
    assert describe_steps(list(range(1, 101)), most=4) == "1, 2, …, 99, 100"


def test_best_pt_is_the_sample_step_of_lowest_divergence_and_generate_draws_from_it(run, tmp_path):
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("divergence") is not None]
    assert [r["step"] for r in rows] == [20, 40, 60]
    step, divergence = best_step(rows)
    varied = [r for r in rows if r["diversity"] >= MIN_DIVERSITY * r["diversity_train"]] or rows
    assert divergence == min(r["divergence"] for r in varied)
    best = run / "checkpoints" / BEST
    assert best.samefile(run / "checkpoints" / f"step-{step:06d}.pt")
    r = generate("--run", str(run), "-n", "2", "--out", str(tmp_path / "d"), "--compare-steps", "1")
    assert r.exit_code == 0 and f"from step {step} (best.pt)" in r.output, r.output
    assert {row["step"] for row in read_jsonl(tmp_path / "d" / "manifest.jsonl")} == {step}
    assert "compared" not in read_jsonl(tmp_path / "d" / "manifest.jsonl")[0]
    assert generate("--run", str(run), "-n", "2", "--out", str(tmp_path / "l"), "--checkpoint", "last.pt").exit_code == 0
    assert {row["step"] for row in read_jsonl(tmp_path / "l" / "manifest.jsonl")} == {60}


def test_generate_compares_the_best_steps_by_the_screens_each_keeps_and_writes_the_closest(run, tmp_path):
    from nesgan.gan.data import nes_indices
    from nesgan.images import open_rgb
    from nesgan.patterns import Reference

    rows = read_jsonl(run / "metrics.jsonl")
    r = generate("--run", str(run), "-n", "2", "--out", str(tmp_path / "c"))  # 2 of 8, from 3 steps
    assert r.exit_code == 0, r.output
    manifest = read_jsonl(tmp_path / "c" / "manifest.jsonl")
    compared = manifest[0]["compared"]
    scored = [r for r in rows if r.get("divergence") is not None]
    # steps whose samples lost their variety are passed over (on some CPUs this run's step 60 does)
    varied = [r for r in scored if r["diversity"] >= MIN_DIVERSITY * r["diversity_train"]] or scored
    ranked = [r["step"] for r in sorted(varied, key=lambda r: (r["divergence"], -r["step"]))]
    assert [c["step"] for c in compared] == best_steps(rows, 3) == ranked[:3] and len(compared) >= 2
    chosen = min(compared, key=lambda c: c["divergence"])  # the first on a tie, as generate keeps it
    assert {row["step"] for row in manifest} == {chosen["step"]}
    assert f"from step {chosen['step']} (step-{chosen['step']:06d}.pt)" in r.output, r.output
    screens = nes_indices(np.stack([open_rgb(tmp_path / "c" / row["file"]) for row in manifest]))
    assert Reference.load(run / "windows.npz").divergence(screens) == pytest.approx(chosen["divergence"], abs=1e-4)
    for c in compared:  # each step's own choice, drawn alone, measures what the comparison said
        one = generate("--run", str(run), "-n", "2", "--out", str(tmp_path / f"s{c['step']}"), "--step", str(c["step"]))
        assert one.exit_code == 0, one.output
        drawn = nes_indices(np.stack([open_rgb(p) for p in sorted((tmp_path / f"s{c['step']}").glob("gen-*.png"))]))
        assert Reference.load(run / "windows.npz").divergence(drawn) == pytest.approx(c["divergence"], abs=1e-4)


def test_generate_draws_from_best_pt_alone_where_the_runs_other_steps_are_gone(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    best = best_steps(read_jsonl(copy / "metrics.jsonl"), 1)[0]
    for p in (copy / "checkpoints").glob("step-*.pt"):
        if p.name != f"step-{best:06d}.pt":
            p.unlink()  # a run folder trimmed by hand: only best.pt's step (and last.pt) left
    r = generate("--run", str(copy), "-n", "2", "--out", str(tmp_path / "g"))
    assert r.exit_code == 0, r.output
    manifest = read_jsonl(tmp_path / "g" / "manifest.jsonl")
    assert {row["step"] for row in manifest} == {best} and "compared" not in manifest[0]


def test_best_steps_ranks_varied_steps_first_and_reads_a_resumed_steps_last_row():
    rows = [{"step": 200, "divergence": 0.30, "diversity": 0.60, "diversity_train": 1.0},  # lost its variety
            {"step": 400, "divergence": 0.36, "diversity": 0.82, "diversity_train": 1.0},
            {"step": 600, "divergence": 0.33, "diversity": 0.90, "diversity_train": 1.0},
            {"step": 800, "divergence": 0.33, "diversity": 0.90, "diversity_train": 1.0},
            {"step": 900},
            {"step": 400, "divergence": 0.32, "diversity": 0.85, "diversity_train": 1.0}]  # resumed: 400 again
    assert best_steps(rows, 3) == [400, 800, 600], "lowest first, the later step on a tie, 200 passed over"
    assert best_steps(rows, 1) == [best_step(rows)[0]] == [400]
    assert best_steps(rows[:1], 2) == [200], "no varied step: the lowest of all"
    assert best_steps([], 3) == []


def test_keep_best_follows_the_rows_ties_to_the_later_step_and_forgets_steps_past_them(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    for s in (20, 40, 60):
        (ckpt / f"step-{s:06d}.pt").write_bytes(str(s).encode())
    rows = [{"step": 20, "divergence": 0.5}, {"step": 30}, {"step": 40, "divergence": 0.3},
            {"step": 60, "divergence": 0.3}]
    assert best_step(rows) == (60, 0.3) and keep_best(tmp_path, rows) == 60
    assert (ckpt / BEST).read_bytes() == b"60"
    assert keep_best(tmp_path, rows[:3]) == 40, "resumed before step 60: best.pt points back"
    assert (ckpt / BEST).read_bytes() == b"40"
    assert keep_best(tmp_path, [{"step": 10}]) is None and not (ckpt / BEST).exists()
    assert best_step([]) is None


def test_best_step_passes_over_steps_whose_samples_lost_their_variety():
    rows = [{"step": 200, "divergence": 0.39, "diversity": 0.60, "diversity_train": 1.0},
            {"step": 1000, "divergence": 0.36, "diversity": 0.82, "diversity_train": 1.0},
            {"step": 1200, "divergence": 0.39, "diversity": 0.74, "diversity_train": 1.0},
            {"step": 1400, "divergence": 0.31, "diversity": 0.61, "diversity_train": 1.0}]
    assert best_step(rows) == (1000, 0.36), "the lowest divergence among varied steps"
    assert best_step([dict(r, diversity_train=1.15) for r in rows]) == (1000, 0.36), "1,200 falls below 0.7 × 1.15"
    assert best_step([dict(r, diversity_train=1.25) for r in rows]) == (1400, 0.31), \
        "no step keeps 0.7 of the training screens' diversity: the lowest divergence of all"
    assert best_step([{k: v for k, v in r.items() if k != "diversity"} for r in rows]) == (1400, 0.31)


def test_a_run_that_ends_with_its_variety_lost_is_told_so_and_one_that_dipped_is_not():
    from nesgan.gan.snapshots import lost_variety
    from nesgan.gan.train import TrainResult

    def rows(diversity):  # one sample row per 200 steps, as metrics.jsonl holds them
        return [{"step": 200 * (i + 1), "divergence": 0.3, "diversity": d, "diversity_train": 1.0}
                for i, d in enumerate(diversity)]

    collapsed = rows([0.57, 0.86, 0.60, 0.49, 0.46, 0.60, 0.39])  # one museum game, seed 3
    assert lost_variety(collapsed) == [200, 600, 800, 1000, 1200, 1400]
    assert lost_variety(rows([0.68, 0.42, 0.75, 0.73, 0.58, 0.68, 0.73, 0.75])) == [], "it recovered"
    assert lost_variety(rows([0.65, 0.49, 1.11, 1.08, 1.07, 1.01, 0.95])) == [], "two early dips"
    assert lost_variety(rows([0.9, 0.9, 0.9, 0.6])) == [], "the last alone"
    assert lost_variety([dict(r, diversity_train=0.5) for r in collapsed]) == [], "against its own art"
    result = TrainResult(run=Path("runs/x"), step=1400, steps_this_call=1400, seconds=1.0, swd=80.0,
                         precision="fp32", world_size=1, best=(400, 0.345),
                         lost_variety=tuple(lost_variety(collapsed)))
    assert "lost their variety" in result.summary() and "another --seed" in result.summary()
    assert "lost" not in TrainResult(run=Path("runs/x"), step=1400, steps_this_call=1400, seconds=1.0,
                                     swd=80.0, precision="fp32", world_size=1).summary()
