"""gan/threads.py: torch's thread count from the cores this process may use, less the busy ones."""

import os
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from nesgan.cli import cli
from nesgan.gan import threads
from nesgan.gan.data import write_fake_screens


def test_threads_given_are_used_as_they_are():
    choice = threads.choose_threads(3)
    assert choice.threads == 3 and choice.requested and "--threads" in choice.describe()


def test_a_cgroup_quota_caps_the_cores(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_quota(tmp_path) is None
    assert threads.cgroup_quota(tmp_path / "nowhere") is None
    monkeypatch.setattr(threads, "allowed_cpus", lambda: [0, 1, 2, 3, 4, 5, 6, 7])
    monkeypatch.setattr(threads, "cgroup_quota", lambda: 2.0)
    monkeypatch.setattr(threads, "busy_cores", lambda cpus, seconds=0: 0.0)
    assert threads.choose_threads().threads == 2  # not 8


def test_cores_other_processes_keep_busy_are_left_to_them(monkeypatch):
    monkeypatch.setattr(threads, "allowed_cpus", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    for busy, expect in ((0.0, 4), (0.3, 4), (1.0, 3), (1.6, 2), (3.9, 1)):
        monkeypatch.setattr(threads, "busy_cores", lambda cpus, seconds=0, b=busy: b)
        assert threads.choose_threads().threads == expect, busy
    monkeypatch.setattr(threads, "busy_cores", lambda cpus, seconds=0: 0.0)
    assert threads.choose_threads(processes=2).threads == 2  # torchrun: shared among ranks


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two cores this process may use")
def test_a_busy_loop_on_one_of_our_cores_is_measured_and_avoided():
    cpu = max(os.sched_getaffinity(0))
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
    loop = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)
        assert threads.busy_cores([cpu], 0.3) >= 0.7
        choice = threads.choose_threads()
        assert choice.threads <= choice.allowed - 1 and "busy with other work" in choice.describe()
    finally:
        loop.kill()
        loop.wait()


def test_train_and_generate_take_threads_and_say_what_they_used(tmp_path):
    write_fake_screens(tmp_path / "screens", 4, seed=0)
    before = torch.get_num_threads()
    try:
        r = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "screens"), "--run",
                                     str(tmp_path / "run"), "--width", "4", "--batch-size", "2",
                                     "--steps", "1", "--precision", "fp32", "--swd-images", "4",
                                     "--threads", "1"])
        assert r.exit_code == 0, r.output
        assert "threads: 1 (--threads" in r.output and torch.get_num_threads() == 1
        r = CliRunner().invoke(cli, ["generate", "--run", str(tmp_path / "run"), "-n", "1",
                                     "--out", str(tmp_path / "g")])
        assert r.exit_code == 0 and "cores allowed" in r.output
    finally:
        torch.set_num_threads(before)
