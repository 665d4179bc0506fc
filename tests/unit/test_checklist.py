"""The checklist's detectors on synthetic telemetry: each warns when its condition starts, with
the checklist's advice, stays quiet while it lasts, and re-arms once it has cleared."""

from __future__ import annotations

import time
from types import SimpleNamespace

from cockpit.training.advice import ADVICE
from cockpit.training.callbacks import time_batches
from cockpit.training.checklist import Checklist

GIB = 1024 ** 3


def kinds(warnings):
    return [w.kind for w in warnings]


def test_eval_loss_flat_from_the_start_warns_once_with_the_checklist_advice():
    c = Checklist()
    out = []
    for i, loss in enumerate([2.500, 2.498, 2.497, 2.496, 2.495, 2.494]):
        out += c.eval_loss(10 * (i + 1), loss)
    assert kinds(out) == ["loss_flat"]
    assert out[0].step == 40  # the fourth evaluation: three after the first without 1% progress
    assert out[0].advice == ADVICE["loss_flat"]
    assert "2.500 -> 2.498 -> 2.497 -> 2.496" in out[0].message


def test_a_run_that_learned_and_levelled_off_is_not_flat():
    c = Checklist()
    out = []
    for i, loss in enumerate([2.5, 1.6, 1.2, 1.19, 1.189, 1.188, 1.188]):
        out += c.eval_loss(i, loss)
    assert out == []


def test_a_falling_loss_is_not_flat():
    c = Checklist()
    assert sum((c.eval_loss(i, 3.0 * 0.97 ** i) for i in range(12)), []) == []


def test_train_loss_windows_decide_without_an_eval_set_and_are_ignored_with_one():
    c = Checklist(train_window=5)
    out = []
    for step in range(1, 5 * 5 + 1):
        out += c.train_loss(step, 2.0 + 0.001 * (step % 2), evaluated=False)
    assert kinds(out) == ["loss_flat"]
    assert out[0].step == 20  # the fourth window of five logged steps
    c = Checklist(train_window=5)
    assert sum((c.train_loss(s, 2.0, evaluated=True) for s in range(100)), []) == []


def test_flat_re_arms_after_the_loss_moves_again():
    c = Checklist(flat_evals=2)
    out = []
    for loss in [2.0, 2.0, 2.0, 2.0, 1.7, 1.7, 1.7]:
        out += c.eval_loss(0, loss)
    # flat, then learning (under 10% overall still? 1.7 is 15% below 2.0: learned, no new warning)
    assert kinds(out) == ["loss_flat"]
    c = Checklist(flat_evals=2)
    out = []
    for loss in [2.0, 2.0, 2.0, 1.95, 1.95, 1.95]:
        out += c.eval_loss(0, loss)
    assert kinds(out) == ["loss_flat", "loss_flat"]  # moved by 2.5% (clears), then flat again


def test_memory_within_five_percent_of_the_device_limit():
    c = Checklist()
    cuda = {"device": "cuda:0", "allocated": 70 * GIB, "reserved": 76 * GIB, "peak": 75 * GIB, "total": 80 * GIB}
    cpu = {"device": "cpu", "rss": 2 * GIB, "peak": 2 * GIB, "total": 64 * GIB}
    out = c.memory(5, [cuda, cpu])
    assert kinds(out) == ["mem_high"]
    assert "cuda:0 memory 76.0 of 80.0 GiB in use (95%)" in out[0].message
    assert c.memory(6, [cuda, cpu]) == []  # still high: said once
    assert c.memory(7, [dict(cuda, reserved=60 * GIB), cpu]) == []  # cleared
    assert kinds(c.memory(8, [cuda, cpu])) == ["mem_high"]  # again
    assert Checklist().memory(1, [dict(cuda, reserved=75 * GIB), cpu]) == []  # 93.75%: room left
    assert kinds(Checklist().memory(1, [dict(cpu, rss=62 * GIB)])) == ["mem_high"]  # a CPU run's RAM


def test_gpu_heat_with_hysteresis():
    c = Checklist()
    assert c.gpu(1, [{"index": 0, "temp_c": 84}]) == []
    out = c.gpu(2, [{"index": 0, "temp_c": 86}])
    assert kinds(out) == ["gpu_hot"] and "GPU 0 at 86 C" in out[0].message
    assert c.gpu(3, [{"index": 0, "temp_c": 82}]) == []  # above 80: still the same episode
    assert c.gpu(4, [{"index": 0, "temp_c": 85}]) == []
    assert c.gpu(5, [{"index": 0, "temp_c": 79}]) == []  # cooled down: re-armed
    assert kinds(c.gpu(6, [{"index": 0, "temp_c": 88}])) == ["gpu_hot"]


def test_gpu_idle_needs_readings_in_a_row():
    c = Checklist()
    polls = [95, 30, 20, 92, 10, 15, 12, 11, 97, 20, 20, 20]
    out = []
    for i, util in enumerate(polls):
        out += [(i, w) for w in c.gpu(i, [{"index": 0, "util": util}, {"index": 1, "util": 99}])]
    assert [i for i, _ in out] == [6, 11]
    assert "GPU 0 utilization 12%" in out[0][1].message
    assert out[0][1].advice == ADVICE["gpu_idle"]


def test_nvml_memory_reading_counts_too():
    out = Checklist().gpu(3, [{"index": 1, "mem_used": 23 * GIB, "mem_total": 24 * GIB}])
    assert kinds(out) == ["mem_high"] and "GPU 1 memory 23.0 of 24.0 GiB" in out[0].message


def test_slow_data_over_a_window_after_warmup_leaving_out_busy_steps():
    c = Checklist(io_window=10, io_warmup=3)
    out = []
    for step in range(1, 4):  # warm-up: slow first batches (tokenizer, file cache) do not count
        out += c.step_time(step, 5.0, 6.0, busy=False)
    for step in range(4, 14):
        out += c.step_time(step, 0.05, 1.0, busy=False)
    out += c.step_time(14, 9.0, 10.0, busy=True)  # an evaluation's step: left out
    assert out == []
    for step in range(15, 30):
        out += c.step_time(step, 0.5, 1.0, busy=False)
    assert kinds(out) == ["slow_io"]  # once, though it lasts
    # the window's share crosses 30% at its 6th slow step: (6 * 0.5 + 4 * 0.05) / 10 = 32%
    assert out[0].step == 20
    assert "waiting for data took 32% of the step time over the last 10 steps" in out[0].message
    assert out[0].advice == ADVICE["slow_io"]


def test_time_batches_reports_the_wait_of_each_fetch():
    waits = []

    def slow_fetch(iterator, n, device):
        time.sleep(0.05)
        return [next(iterator) for _ in range(n)], None

    trainer = SimpleNamespace(get_batch_samples=slow_fetch)
    time_batches(trainer, waits.append)
    batches, _ = trainer.get_batch_samples(iter(range(10)), 3, "cpu")
    assert batches == [0, 1, 2]
    assert len(waits) == 1 and 0.04 < waits[0] < 1.0
