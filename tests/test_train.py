"""`nesgan train`: run folder, exact resume after SIGKILL, refusals, bad input, DDP."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from checkpoint_trees import states_equal
from nesgan.cli import cli
from nesgan.errors import NesganError

TINY = ["--width", "4", "--batch-size", "2", "--sample-every", "1000", "--precision", "fp32",
        "--swd-images", "4"]


def train(*args: str):
    return CliRunner().invoke(cli, ["train", *args])


def test_train_writes_config_checkpoints_samples_and_metrics(screens, tmp_path):
    run = tmp_path / "run"
    r = train("--data", str(screens), "--run", str(run), *TINY, "--steps", "4",
              "--checkpoint-every", "2", "--sample-every", "2")
    assert r.exit_code == 0, r.output
    config = json.loads((run / "config.json").read_text())
    assert config["width"] == 4 and config["steps"] == 4 and config["preset"] == "tiny"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["best.pt", "last.pt", "step-000002.pt", "step-000004.pt"]
    with Image.open(run / "samples" / "step-000004.png") as im:
        assert im.size == (4 * 224, 4 * 224) and im.mode == "RGB"
    assert (run / "samples" / "latest.png").read_bytes() == (run / "samples" / "step-000004.png").read_bytes()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 4]
    for key in ("loss_d", "loss_g", "d_x", "d_g_z", "images_per_s"):
        assert all(isinstance(row[key], float) for row in rows)
    assert all(row["swd"] > 0 and len(row["swd_levels"]) == 4 for row in rows)
    assert config["arch"] == "patterns"


def test_sample_steps_log_quality_numbers_beside_the_training_screens_and_plot_them(screens, tmp_path):
    run = tmp_path / "run"
    r = train("--data", str(screens), "--run", str(run), *TINY, "--steps", "4", "--sample-every", "2")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        for key in ("orphan", "tile_share", "colours_per_cell", "diversity", "coverage", "invented",
                    "divergence"):
            assert isinstance(row[key], float) and row[key] >= 0, key
            assert isinstance(row[key + "_train"], float), key
        assert 0 <= row["orphan"] <= 1 and 0 < row["tile_share"] <= 1 and row["coverage"] <= 1
    assert rows[0]["orphan_train"] == rows[1]["orphan_train"]  # measured once per run
    with Image.open(run / "metrics.png") as im:
        assert im.format == "PNG" and im.width >= 600


def test_checkpoint_loads_with_weights_only_and_holds_the_whole_state(screens, tmp_path):
    run = tmp_path / "run"
    assert train("--data", str(screens), "--run", str(run), *TINY, "--steps", "2").exit_code == 0
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    for key in ("generator", "discriminator", "ema", "opt_g", "opt_d", "data", "noise", "rng",
                "fixed_noise", "config"):
        assert key in state
    assert state["step"] == 2 and state["config"]["width"] == 4
    assert state["opt_g"]["state"], "Adam moments are saved"


def _kill_after_checkpoint(cmd: list[str], ckpt: Path, wait_until) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(ckpt.exists, proc, f"checkpoint {ckpt.name}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow  # 4 cases, each two training subprocesses
@pytest.mark.parametrize("arch, precision, augment", [
    ("nes", "fp32", "none"), ("nes", "bf16", "shift-cut"), ("patterns", "fp32", "none"), ("upsample", "fp32", "none"),
    ("dcgan", "fp32", "none")])
def test_resume_after_sigkill_ends_bitwise_equal_to_an_uninterrupted_run(screens, tmp_path, wait_until, arch,
                                                                         precision, augment):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    common = ["--data", str(screens), "--width", "4", "--batch-size", "2", "--sample-every", "1000",
              "--swd-images", "4", "--arch", arch, "--augment", augment,
              "--precision", precision, "--seed", "7", "--threads", "1"]
    # --threads pinned: the default counts the cores other processes keep busy, and a different
    # thread count sums convolutions in another order (not bitwise the same run)
    _kill_after_checkpoint(
        [sys.executable, "-m", "nesgan", "train", "--run-dir", str(killed), *common,
         "--steps", "100000", "--checkpoint-every", "2"],
        killed / "checkpoints" / "step-000004.pt", wait_until)
    done = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert done >= 4 and done % 2 == 0
    target = str(done + 3)  # an odd number of steps on top, so the final save is off the grid
    r = train("--run", str(killed), "--resume", "--steps", target, "--threads", "1")
    assert r.exit_code == 0, r.output
    r = train("--run", str(straight), *common, "--steps", target, "--checkpoint-every", "2")
    assert r.exit_code == 0, r.output
    a = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == int(target)
    a["config"].pop("run"), b["config"].pop("run")
    a["config"].pop("steps"), b["config"].pop("steps")
    assert states_equal(a, b) == []
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows}), "no duplicate rows after resume"


def test_two_runs_on_two_threads_train_bitwise_alike(screens, tmp_path):
    # `make demo` trains on the machine's cores; the same command twice must be the same run
    # (a lookup summing its gradient with racing threads made every 2-thread run a new draw)
    states = []
    for name in ("first", "second"):
        run = tmp_path / name
        r = train("--data", str(screens), "--run", str(run), *TINY, "--steps", "3", "--seed", "7",
                  "--threads", "2")
        assert r.exit_code == 0, r.output
        state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        state["config"].pop("run")
        states.append(state)
    assert states_equal(*states) == []


def test_starting_over_a_non_empty_run_needs_overwrite(screens, tmp_path):
    run = tmp_path / "run"
    assert train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1").exit_code == 0
    r = train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1")
    assert r.exit_code == 1
    assert "--overwrite" in r.output and "Traceback" not in r.output
    (run / "notes.txt").write_text("mine")
    r = train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1", "--overwrite", "--seed", "3")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["seed"] == 3
    assert (run / "notes.txt").read_text() == "mine", "files nesgan did not write are kept"


def test_resume_with_a_different_width_is_refused_naming_the_difference(screens, tmp_path):
    run = tmp_path / "run"
    assert train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1").exit_code == 0
    r = train("--run", str(run), "--resume", "--width", "16", "--steps", "2")
    assert r.exit_code == 1
    assert r.output.strip() == "Error: --width 16 differs from the run's 4; resume with the run's " \
                               "settings or start over with --overwrite"


def _as_written_before(run: Path, setting: str) -> None:
    """Drop `setting` from the run's config.json and last.pt, as a nesgan without it wrote them."""
    config = json.loads((run / "config.json").read_text())
    del config[setting]
    (run / "config.json").write_text(json.dumps(config))
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    del state["config"][setting]
    torch.save(state, run / "checkpoints" / "last.pt")


def test_resume_with_another_arch_is_refused_and_an_old_run_resumes_as_dcgan(screens, tmp_path):
    run = tmp_path / "run"
    assert train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1",
                 "--arch", "dcgan").exit_code == 0
    r = train("--run", str(run), "--resume", "--arch", "upsample", "--steps", "2")
    assert r.exit_code == 1
    assert "--arch upsample differs from the run's dcgan" in r.output
    _as_written_before(run, "arch")
    r = train("--run", str(run), "--resume", "--steps", "2")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["arch"] == "dcgan"


def _tiny_patterns_run(screens: Path, run: Path, **settings) -> None:
    """One step of a tiny `patterns` run through the API, with config `settings` the CLI lacks flags for."""
    from nesgan.gan.config import resolve_train_config
    from nesgan.gan.train import train as train_api

    train_api(resolve_train_config(data=str(screens), run=str(run), width=4, batch_size=2, steps=1,
                                   sample_every=1000, precision="fp32", swd_images=4, **settings))


def test_a_patterns_run_from_before_the_pattern_critic_resumes_without_one(screens, tmp_path):
    run = tmp_path / "run"
    _tiny_patterns_run(screens, run, pattern_critic=0.0)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert not any(k.startswith("critic.") for k in state["discriminator"]), "no critic in D"
    _as_written_before(run, "pattern_critic")
    r = train("--run", str(run), "--resume", "--steps", "2")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["pattern_critic"] == 0.0
    new = tmp_path / "new"
    assert train("--data", str(screens), "--run", str(new), *TINY, "--steps", "1").exit_code == 0
    state = torch.load(new / "checkpoints" / "last.pt", weights_only=True)
    assert any(k.startswith("critic.") for k in state["discriminator"]), "new runs: D has a pattern critic"


def test_a_run_from_before_the_table_and_critic_sizes_resumes_and_generates_at_256_and_1(screens, tmp_path):
    run = tmp_path / "run"
    _tiny_patterns_run(screens, run, pattern_table=256, critic_width=1, usage_rows=False, usage_weight=1.0,
                       cell_weight=0.0, whole_cells=False)
    for setting in ("pattern_table", "critic_width", "usage_rows", "usage_weight", "cell_weight", "whole_cells"):
        _as_written_before(run, setting)
    r = train("--run", str(run), "--resume", "--steps", "2")
    assert r.exit_code == 0, r.output
    config = json.loads((run / "config.json").read_text())
    assert (config["pattern_table"], config["critic_width"], config["usage_rows"], config["usage_weight"],
            config["cell_weight"]) == (256, 1, False, 1.0, 0.0)
    out = tmp_path / "gen"
    assert CliRunner().invoke(cli, ["generate", "--run", str(run), "-n", "2", "--out", str(out)]).exit_code == 0
    assert len(list(out.glob("gen-*.png"))) == 2


def test_the_table_and_critic_sizes_shape_the_networks_and_generate_reads_them(screens, tmp_path):
    from nesgan.gan.config import resolve_train_config

    run = tmp_path / "run"
    _tiny_patterns_run(screens, run, pattern_table=96, critic_width=2)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["ema"]["head.table"].shape == (96, 8, 8)
    assert state["discriminator"]["critic.net.0.bias"].shape == (2 * 4 * 2,)  # 2·W·critic_width
    out = tmp_path / "gen"
    r = CliRunner().invoke(cli, ["generate", "--run", str(run), "-n", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output  # a 96-pattern table loads into a 96-pattern generator
    with pytest.raises(NesganError, match="pattern_table must be 4 to 4096"):
        resolve_train_config(data=str(screens), run=str(tmp_path / "x"), pattern_table=3)
    with pytest.raises(NesganError, match="critic_width must be 1 to 8"):
        resolve_train_config(data=str(screens), run=str(tmp_path / "x"), critic_width=0)


def test_resume_keeps_the_runs_settings_and_may_raise_steps(screens, tmp_path):
    run = tmp_path / "run"
    assert train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1").exit_code == 0
    r = train("--run", str(run), "--resume", "--steps", "3")
    assert r.exit_code == 0, r.output
    assert "now at 3" in r.output
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3 and state["config"]["width"] == 4 and state["config"]["steps"] == 3


@pytest.mark.parametrize("setup, message", [
    ("missing", "is not a folder of screens"),
    ("empty", "no *.png files"),
    ("off_size", "is 256×240, not 224×224"),
])
def test_bad_data_folders_fail_with_one_line(tmp_path, setup, message):
    data = tmp_path / "data"
    if setup != "missing":
        data.mkdir()
    if setup == "off_size":
        Image.new("RGB", (256, 240)).save(data / "a.png")
    r = train("--data", str(data), "--run", str(tmp_path / "run"), *TINY, "--steps", "1")
    assert r.exit_code == 1
    assert message in r.output and len(r.output.strip().splitlines()) == 1


def test_resume_from_a_corrupt_checkpoint_fails_with_one_line(screens, tmp_path):
    run = tmp_path / "run"
    assert train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1").exit_code == 0
    (run / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 not really a zip")
    r = train("--run", str(run), "--resume", "--steps", "2")
    assert r.exit_code == 1
    assert "is corrupt" in r.output and len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("message", [
    "DefaultCPUAllocator: not enough memory: you tried to allocate 9 GB.",
    "[enforce fail at alloc_cpu.cpp:127] . DefaultCPUAllocator: can't allocate memory: you tried "
    "to allocate 150528000000 bytes. Error code 12 (Cannot allocate memory)",
])
def test_running_out_of_memory_says_lower_batch_size_and_leaves_nothing_in_the_way(
        screens, tmp_path, monkeypatch, message):
    import nesgan.gan.train as train_module

    real_step = train_module.train_step

    def oom(*args, **kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(train_module, "train_step", oom)
    run = tmp_path / "run"
    r = train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1")
    assert r.exit_code == 1
    assert "lower --batch-size" in r.output and "Traceback" not in r.output
    monkeypatch.setattr(train_module, "train_step", real_step)
    r = train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1")  # no --overwrite
    assert r.exit_code == 0, r.output


def test_resume_of_a_run_that_does_not_exist_is_refused_instead_of_starting_fresh(screens, tmp_path):
    r = train("--data", str(screens), "--run", str(tmp_path / "typo"), "--resume", *TINY, "--steps", "1")
    assert r.exit_code == 1 and "nothing to resume" in r.output and "--run" in r.output
    assert not (tmp_path / "typo").exists()


def test_resume_to_a_total_already_reached_says_steps_is_the_total(screens, tmp_path):
    run = tmp_path / "run"
    assert train("--data", str(screens), "--run", str(run), *TINY, "--steps", "2").exit_code == 0
    r = train("--run", str(run), "--resume", "--steps", "2")
    assert r.exit_code == 0 and "already at step 2" in r.output and "--steps 4" in r.output


def _worker_errors(stderr: str) -> str:
    """What the workers themselves said: torchrun's own report ends stderr and names only the
    signal, so a failure shows the lines before it (rank 1's C++ or Python error) first."""
    cut = stderr.find("Traceback (most recent call last):\n  File \"" + str(Path(sys.executable).with_name("torchrun")))
    workers = stderr[:cut] if cut > 0 else stderr
    return workers[-6000:] + "\n--- torchrun ---\n" + stderr[-1500:]


@pytest.mark.slow
def test_torchrun_trains_with_two_gloo_processes_and_rank_zero_writes(screens, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "nesgan", "train",
               "--data", str(screens), "--run-dir", str(run), "--device", "cpu", *TINY,
               "--steps", "3", "--checkpoint-every", "3"]
    r = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    if r.returncode != 0 and "(SIGABRT)" in r.stderr:
        # Once in CI (1 of some 30 full runs, with another test worker on the same 2 cores) a
        # worker died of SIGABRT (its own error cut off), and 15 runs here, 8 under full load,
        # did not repeat it: one second try, from scratch; a real fault fails both, and the
        # message shows both.
        first = _worker_errors(r.stderr)
        r = subprocess.run([*command, "--overwrite"], capture_output=True, text=True, timeout=300,
                           env=env)
        assert r.returncode == 0, first + "\n=== second try ===\n" + _worker_errors(r.stderr)
    assert r.returncode == 0, _worker_errors(r.stderr)
    assert r.stdout.count("trained 3 steps") == 1, "only rank 0 reports"
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3 and state["world_size"] == 2
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["world_size"] == 2
    assert all(0 < r["d_x"] < 1 and r["loss_d"] > 0 for r in rows)
    shutil.rmtree(run)


_FAULTS_PER_64MIB_TEMPORARY = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from nesgan.gan.train import keep_freed_memory
    assert keep_freed_memory()
x = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB: above glibc's largest dynamic mmap threshold
for _ in range(3):
    y = x + 1
    del y
per_window = []  # the kernel itself faults pages now and then (e.g. NUMA sampling): take the least
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        y = x + 1
        del y
    per_window.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 10)
print(min(per_window))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_training_keeps_freed_buffers_instead_of_page_faulting_them_in_every_step():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS_PER_64MIB_TEMPORARY, mode],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    # How many faults a 64 MiB temporary costs depends on the kernel (4 KiB pages: ~16,000;
    # transparent huge pages: ~32) and the libc, so the default, measured here, is the baseline.
    default = faults("default")
    if default < 8:
        pytest.skip(f"this libc/kernel already reuses freed 64 MiB blocks ({default} faults each)")
    kept = faults("keep")
    assert 4 * kept <= default, f"{kept} faults per temporary kept, {default} by default"


def test_learning_rates_come_from_the_preset_unless_given(screens, tmp_path):
    for preset, flags, want in [("small", [], (2e-4, 1e-3)), ("full", [], (2e-4, None)),
                                ("tiny", ["--lr", "1e-4", "--lr-g", "5e-4"], (1e-4, 5e-4))]:
        run = tmp_path / preset
        r = train("--data", str(screens), "--run", str(run), "--preset", preset, *TINY,
                  "--steps", "1", *flags)
        assert r.exit_code == 0, r.output
        saved = json.loads((run / "config.json").read_text())
        assert (saved["lr"], saved["lr_g"]) == want
    r = train("--run", str(tmp_path / "tiny"), "--resume", "--steps", "2", "--lr-g", "1e-3")
    assert r.exit_code == 1 and "--lr-g" in r.output  # a resumed run keeps its learning rates


def test_cell_weight_and_whole_cells_are_recorded_and_kept_by_resume(screens, tmp_path):
    from nesgan.gan.config import resolve_train_config
    from nesgan.gan.train import _build, _load_screens

    run = tmp_path / "run"
    r = train("--data", str(screens), "--run", str(run), *TINY, "--steps", "1", "--cell-weight", "2", "--whole-cells")
    assert r.exit_code == 0, r.output
    config = json.loads((run / "config.json").read_text())
    assert (config["cell_weight"], config["whole_cells"]) == (2.0, True)
    assert train("--run", str(run), "--resume", "--steps", "2").exit_code == 0
    assert json.loads((run / "config.json").read_text())["cell_weight"] == 2.0
    refused = train("--run", str(run), "--resume", "--steps", "3", "--cell-weight", "0")
    assert refused.exit_code != 0 and "cell" in refused.output

    cfg = resolve_train_config(data=str(screens), run="unused", width=4, batch_size=2, precision="fp32")
    head = _build(cfg, _load_screens(cfg), 2, None)[0].g.head
    assert head.cell_weight == 1.0 and head.cell_rows.shape[0] == 4, "new runs: the four halves"
    assert torch.allclose(head.cell_usage.sum(1), torch.ones(4))
    assert (head.cell_rows < 4 * len(head.table)).all()
    whole = _build(dataclasses.replace(cfg, whole_cells=True), _load_screens(cfg), 2, None)[0].g.head
    assert whole.cell_rows.shape[0] == 1 and whole.cell_rows.shape[2] == 4
    off = _build(dataclasses.replace(cfg, cell_weight=0.0), _load_screens(cfg), 2, None)[0].g.head
    assert off.cell_rows is None, "cell_weight 0: no cell prior"
