"""gan/interrupt.py: Ctrl-C or SIGTERM during `nesgan train` checkpoints, then says how to resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from checkpoint_trees import states_equal
from nesgan.cli import cli
from nesgan.gan.interrupt import GracefulStop, TrainingInterrupted

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def common(screens: Path) -> list[str]:
    # sample grids every 2 steps show the loop is running; no periodic checkpoint before the signal
    return ["--data", str(screens), "--width", "4", "--batch-size", "2", "--sample-every", "2",
            "--swd-images", "4", "--precision", "fp32", "--seed", "3", "--checkpoint-every", "1000",
            "--threads", "1"]  # pinned: another thread count is another summation order


def _signal_mid_run(cmd: list[str], started: Path, sig: int, wait_until) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(started.exists, proc, f"training wrote {started.name}")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_ctrl_c_mid_run_checkpoints_and_resume_equals_an_uninterrupted_run(screens, tmp_path, wait_until):
    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    done = _signal_mid_run([sys.executable, "-m", "nesgan", "train", "--run-dir", str(stopped),
                            *common(screens), "--steps", "100000"],
                           stopped / "samples" / "step-000002.png", signal.SIGINT, wait_until)
    assert done.returncode == 130, done.stderr
    assert f"nesgan train --run {stopped} --resume" in done.stderr and "Traceback" not in done.stderr
    step = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert step >= 2
    assert not list((stopped / "checkpoints").glob(".*.tmp")), "no half-written checkpoint"
    target = str(step + 3)
    r = CliRunner().invoke(cli, ["train", "--run", str(stopped), "--resume", "--steps", target,
                                 "--threads", "1"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["train", "--run", str(straight), *common(screens), "--steps", target])
    assert r.exit_code == 0, r.output
    a = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == int(target)
    for s in (a, b):
        s["config"].pop("run"), s["config"].pop("steps")
    assert states_equal(a, b) == []
    rows = [json.loads(x) for x in (stopped / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == sorted({x["step"] for x in rows})


def test_sigterm_checkpoints_too_and_exits_143(screens, tmp_path, wait_until):
    run = tmp_path / "run"
    done = _signal_mid_run([sys.executable, "-m", "nesgan", "train", "--run-dir", str(run),
                            *common(screens), "--steps", "100000"],
                           run / "samples" / "step-000002.png", signal.SIGTERM, wait_until)
    assert done.returncode == 143, done.stderr
    assert "--resume" in done.stderr
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] >= 2


def test_the_first_signal_asks_and_the_second_stops_at_once():
    before = signal.getsignal(signal.SIGINT)
    stop = GracefulStop()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs between bytecodes of this thread
        assert stop.requested == signal.SIGINT
        with pytest.raises(TrainingInterrupted) as info:
            stop.check("runs/x", 12)
        assert info.value.exit_status == 130 and "nesgan train --run runs/x --resume" in info.value.advice()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGINT) is before  # handlers put back after the second
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_disabled_stop_leaves_the_handlers_alone():
    before = signal.getsignal(signal.SIGTERM)
    stop = GracefulStop(enabled=False)
    assert signal.getsignal(signal.SIGTERM) is before
    stop.check("r", 1)  # nothing requested: no raise
    stop.restore()
