"""The GPU benchmark's plan (``tests/bench/gpu.py`` without a GPU): no model is built, nothing
is timed, but every variant's config, speed-ups and estimate come from the cockpit's own code.

Why test a benchmark: it is run rarely, on borrowed GPU time, so a mistake in its planning
(a variant that cannot be configured, a refusal that crashes, an estimate of zero) must show
here, on the CPU, in seconds, not after the machine is booked.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest
import torch

from tests.bench import gpu

CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="what a machine without CUDA is told")


def plan_lines(out: str) -> dict[str, str]:
    """The plan's line of each variant, by name (``  name  estimate ...  uses|refused ...``)."""
    lines = {}
    for line in out.splitlines():
        words = line.split()
        if line.startswith("  ") and words and words[0] in gpu.VARIANTS:
            lines[words[0]] = line
    return lines


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run of every variant, its exit code, printed output and JSON."""
    out_path = tmp_path_factory.mktemp("gpu-bench") / "plan.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = gpu.main(["--dry-run", "--out", str(out_path)])
    return rc, buf.getvalue(), json.loads(out_path.read_text(encoding="utf-8"))


def test_dry_run_plans_every_variant(dry_run):
    rc, out, report = dry_run
    assert rc == 0
    assert [e["name"] for e in report["plan"]] == list(gpu.VARIANTS)
    assert set(plan_lines(out)) == set(gpu.VARIANTS)
    assert report["timed"] is False
    assert report["settings"]["model"] == gpu.DEFAULT_MODEL
    assert "random weights" in out and "vocabulary:" in out
    for entry in report["plan"]:
        total = entry["estimate"]["total_gib"]
        assert isinstance(total, float) and math.isfinite(total) and total > 0, entry


@CPU_ONLY
def test_cpu_refuses_liger_and_flash_and_resolves_the_rest(dry_run):
    rc, out, report = dry_run
    by_name = {e["name"]: e for e in report["plan"]}
    lines = plan_lines(out)
    reasons = {"cockpit_liger": "kernels=liger needs a CUDA GPU",
               "cockpit_flash": "attn=flash_attention_2 needs a CUDA GPU"}
    for name, reason in reasons.items():
        assert by_name[name]["status"] == "refused"
        assert by_name[name]["reason"].startswith(reason) and "\n" not in by_name[name]["reason"]
        assert f"refused: {reason}" in lines[name]
    uses = {"plain": "loss over every position, padding, attention sdpa",
            "cockpit_hf_loss": "loss over every position, padding, attention sdpa",
            "cockpit_learned": "loss on learned positions only, padding, attention sdpa",
            "cockpit_packed": "loss on learned positions only, packing, attention sdpa per packed example"}
    for name, summary in uses.items():
        assert by_name[name]["status"] == "planned", by_name[name]
        assert by_name[name]["uses"].startswith(summary)
        assert by_name[name]["device"] == "cpu"
        assert f"uses {summary}" in lines[name]
    assert "no CUDA device is present" in out.splitlines()[-1] and "nothing was timed" in out.splitlines()[-1]


def test_estimate_is_the_estimators_own_figure(dry_run):
    """The plan's figure is what ``cockpit.planning.memory`` says for the same config on a GPU."""
    from cockpit.config import build_config
    from cockpit.planning.memory import estimate_for_config

    _, _, report = dry_run
    plan = {entry["name"]: entry for entry in report["plan"]}
    for name, learned in (("plain", False), ("cockpit_learned", True)):
        cfg = build_config(None, None, {"model": gpu.DEFAULT_MODEL, "method": "lora", "batch_size": gpu.DEFAULT_BATCH,
                                        "max_length": gpu.DEFAULT_SEQ, "precision": "bf16", "lora_dropout": 0.0,
                                        "lora_r": 16, "learned_loss": learned})
        expected = estimate_for_config(cfg, device="cuda")["total_bytes"] / gpu.GIB
        assert plan[name]["estimate"]["total_gib"] == pytest.approx(expected, abs=1e-3), name
    # the learned-position loss never holds the whole batch's logits
    assert plan["cockpit_learned"]["estimate"]["total_gib"] < plan["cockpit_hf_loss"]["estimate"]["total_gib"]


@CPU_ONLY
def test_a_real_run_without_cuda_plans_then_exits_2(capsys):
    rc = gpu.main(["--variants", "plain,cockpit_flash", "--steps", "2"])
    out = capsys.readouterr().out
    assert rc == 2
    assert set(plan_lines(out)) == {"plain", "cockpit_flash"}
    assert out.splitlines()[-1].startswith("no CUDA device is present")


def test_unknown_variant_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        gpu.main(["--dry-run", "--variants", "plain,turbo"])
    assert exc.value.code == 2
    assert "unknown variant(s) turbo" in capsys.readouterr().err


def test_rates_leave_the_warmup_steps_out():
    # 100 tokens a step; the first two steps take 10 s (compilation), the rest 1 s each
    points = [(10.0, 100), (20.0, 200), (21.0, 300), (22.0, 400)]
    assert gpu.rates(points, warmup=2) == (100.0, round(400 / 22, 1))
    assert gpu.rates(points, warmup=0) == (round(400 / 22, 1),) * 2
    assert gpu.rates([], warmup=2) == (None, None)


def test_a_cockpit_run_is_read_from_its_events(tmp_path):
    """Tokens, clock, loss, the CUDA peak of the step events and the trainer's own line of
    what it used: what a real GPU run's row is made of."""
    from cockpit.run import events as ev
    sink = ev.JsonlSink(tmp_path / "events.jsonl")
    sink.emit(ev.RunStarted(method="lora", estimate={"total_bytes": 3 * gpu.GIB}))
    sink.emit(ev.Warning(kind="info", message="lora: training 1 of 2 parameters (50.00%) on cuda in bfloat16; "
                                              "160 train / 0 eval examples; loss on learned positions only, packing, "
                                              "attention flash_attention_2", advice=""))
    for step in (1, 2, 3):
        sink.emit(ev.Step(step=step, loss=10.0 - step, tokens=1000 * step, elapsed_s=float(step),
                          mem=[{"device": "cuda:0", "peak": step * gpu.GIB}, {"device": "cpu", "peak": 99 * gpu.GIB}]))
    sink.close()
    got = gpu.from_events(tmp_path)
    assert [s["tokens"] for s in got["step_log"]] == [1000, 2000, 3000]
    assert got["event_peak_allocated"] == 3 * gpu.GIB  # the GPU's, not the CPU's
    assert got["uses_actual"] == "loss on learned positions only, packing, attention flash_attention_2"
    assert got["cockpit_estimate_gib"] == 3.0
    assert "error" not in got


def test_the_table_gives_numbers_or_the_reason():
    rows = [{"name": "plain", "useful_tok_s": 10000.0, "ratio_vs_plain": 1.0, "peak_allocated_gib": 4.0,
             "peak_reserved_gib": 5.0, "estimate_gib": 6.0, "estimate_vs_reserved": 1.2, "final_loss": 11.5},
            {"name": "cockpit_liger",
             "skipped": "kernels=liger needs the liger-kernel package -> pip install liger-kernel"}]
    lines = gpu.format_table(rows).splitlines()
    assert lines[0].split()[:3] == ["variant", "useful", "tok/s"] and "estimate/measured" in lines[0]
    assert lines[1].split() == ["plain", "10,000", "1.00x", "4.00", "5.00", "6.00", "1.20x", "11.5000"]
    assert lines[2].split(None, 1) == ["cockpit_liger", "skipped: " + rows[1]["skipped"]]
