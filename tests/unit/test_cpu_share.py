"""Sharing the CPU: the trainer's thread count follows what the rest of the machine leaves."""

from __future__ import annotations

import os

from cockpit.training import cpu_share
from cockpit.training.cpu_share import CpuShare, threads_for, trainer_running, yield_to_trainer


def test_threads_are_the_cores_the_others_leave():
    assert threads_for(0.0, 2, 2) == 2
    assert threads_for(0.05, 2, 2) == 2  # a dashboard or an editor costs nothing
    assert threads_for(0.67, 2, 2) == 1  # one busy program beside two trainer threads
    assert threads_for(1.0, 2, 2) == 1
    assert threads_for(3.0, 2, 2) == 1  # never below one
    assert threads_for(2.2, 16, 16) == 14
    assert threads_for(0.0, 16, 8) == 8  # never above what the trainer started with


def test_the_first_sample_decides_later_changes_need_two():
    share = CpuShare(most=2, cores=2, interval=0.01)
    share.hz = 100
    share.observe(2.0, machine_ticks=200 + 400, own_ticks=400)  # others: 1 core, before the first step
    assert share.desired == 1 and round(share.other_cores, 2) == 1.0
    share.observe(2.0, machine_ticks=400, own_ticks=400)  # a moment of calm
    assert share.desired == 1
    share.observe(2.0, machine_ticks=600, own_ticks=400)
    assert share.desired == 1
    share.observe(2.0, machine_ticks=400, own_ticks=400)  # the neighbour stopped: one sample is not enough
    assert share.desired == 1
    share.observe(2.0, machine_ticks=400, own_ticks=400)
    assert share.desired == 2


def test_a_trainer_process_is_found_by_its_command_line(tmp_path):
    proc = tmp_path / "proc"
    (proc / "123").mkdir(parents=True)
    (proc / "123" / "cmdline").write_bytes(b"/usr/bin/python\0-m\0cockpit.training.trainer_main\0/runs/x\0")
    (proc / "456").mkdir()
    (proc / "456" / "cmdline").write_bytes(b"vim\0notes.txt\0")
    (proc / "self").mkdir()
    assert trainer_running(proc)
    (proc / "123" / "cmdline").write_bytes(b"bash\0")
    assert not trainer_running(proc)


def test_helpers_take_one_thread_while_a_trainer_runs(monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM"):
        monkeypatch.setenv(name, "x")  # recorded, so what yield_to_trainer sets is undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setattr(cpu_share, "trainer_running", lambda: False)
    assert not yield_to_trainer() and "OMP_NUM_THREADS" not in os.environ
    monkeypatch.setattr(cpu_share, "trainer_running", lambda: True)
    import torch

    before = torch.get_num_threads()
    try:
        assert yield_to_trainer()
        assert os.environ["OMP_NUM_THREADS"] == "1" and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's own setting wins
    assert not yield_to_trainer()


def test_the_real_sampler_reads_this_machine():
    share = CpuShare(most=2, interval=0.05).start()
    try:
        assert share.available
        import time

        time.sleep(0.3)
        assert share.other_cores >= 0.0 and 1 <= share.desired <= 2
    finally:
        share.stop()
