"""Preference tuning without training: the checklist's preference rules, the stage helpers
(``cockpit.training.stages``), the memory estimator's preference stages, ``plan --stage`` and the
follower's stage series."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

from cockpit.run import events as ev
from cockpit.training.advice import ADVICE
from cockpit.models.catalog import lookup
from cockpit.training.checklist import Checklist
from cockpit.config import build_config
from cockpit.errors import CockpitError
from cockpit.run.follow import RunState
from cockpit.planning.memory import BREAKDOWN_KEYS, estimate_for_config, estimate_memory, weight_bytes
from cockpit.training.stages import check_stage, stage_charts, stage_metrics, trl_classes

SMOL = lookup("HuggingFaceTB/SmolLM2-135M")
BUNDLED = "HuggingFaceTB/SmolLM2-135M-Instruct"


def kinds(warnings):
    return [w.kind for w in warnings]


def pref(margin, accuracy=0.9, chosen=None, rejected=None):
    """One logged step of a DPO run, as :func:`cockpit.training.stages.stage_metrics` hands it on."""
    out = {"rewards/margins": margin, "rewards/accuracies": accuracy}
    if chosen is not None:
        out["rewards/chosen"] = chosen
    if rejected is not None:
        out["rewards/rejected"] = rejected
    return out


def feed(checklist, metrics_list, first_step=1):
    out = []
    for i, metrics in enumerate(metrics_list):
        out += checklist.preference(first_step + i, metrics)
    return out


def assert_advised(warnings):
    for w in warnings:
        assert isinstance(w, ev.Warning)
        assert w.advice and w.advice.strip(), f"{w.kind} has no advice"
        assert w.advice == ADVICE[w.kind]
        assert w.message


# -- 1. the checklist's preference rules --------------------------------------------------

def test_margin_above_margin_max_warns_once_and_re_arms_after_it_clears():
    c = Checklist()
    high, low = c.margin_max + 1.0, c.margin_max / 2
    # rising chosen, falling rejected, accuracy 1: only the margin rule can speak
    steps = [low, high, high + 1, high + 2, low, high]
    out = feed(c, [pref(m, 1.0, chosen=0.1 * i, rejected=-0.1 * i) for i, m in enumerate(steps)])
    assert kinds(out) == ["pref_margin_high", "pref_margin_high"]
    assert [w.step for w in out] == [2, 6]  # not at 3 and 4 (still high); again after step 5 cleared it
    assert f"{high:.1f}" in out[0].message
    assert_advised(out)


def test_margin_at_the_threshold_is_not_high():
    c = Checklist()
    assert feed(c, [pref(c.margin_max, 1.0)] * 3) == []


def test_accuracy_near_a_half_with_tiny_margins_over_the_window_is_stuck():
    c = Checklist()
    tiny = c.margin_tiny / 5
    steps = [pref(tiny * (-1) ** i, 0.5 + 0.02 * (-1) ** i) for i in range(c.pref_window + 5)]
    out = feed(c, steps)
    assert kinds(out) == ["pref_stuck"]
    assert out[0].step == c.pref_window  # as soon as the window is full, then quiet while it lasts
    assert_advised(out)


def test_stuck_needs_a_full_window():
    c = Checklist()
    assert feed(c, [pref(0.0, 0.5)] * (c.pref_window - 1)) == []


def test_stuck_re_arms_after_the_model_starts_telling_the_pairs_apart():
    c = Checklist(pref_window=4)
    stuck = [pref(0.0, 0.5)] * 4
    learning = [pref(1.0, 0.9)] * 4
    out = feed(c, stuck + learning + stuck)
    assert kinds(out) == ["pref_stuck", "pref_stuck"]


def test_tiny_margins_with_a_high_accuracy_are_not_stuck():
    c = Checklist()
    assert feed(c, [pref(0.01, 0.9)] * (2 * c.pref_window)) == []


def test_chosen_and_rejected_both_falling_warns_chosen_falling():
    c = Checklist()
    n = c.pref_window
    # the margin stays healthy (rejected falls faster), the chosen reward ends below -chosen_drop
    end = -(c.chosen_drop + 0.5)
    steps = [pref(0.5 + 0.05 * i, 0.8, chosen=end * i / (n - 1), rejected=2 * end * i / (n - 1)) for i in range(n)]
    out = feed(c, steps)
    assert kinds(out) == ["pref_chosen_falling"]
    assert out[0].step == n
    assert f"{end:.2f}" in out[0].message
    assert_advised(out)


def test_chosen_falling_only_a_little_or_alone_is_not_warned():
    c = Checklist()
    n = c.pref_window
    # both fall, but the chosen reward stays above -chosen_drop
    small = -c.chosen_drop / 2
    assert feed(c, [pref(0.5, 0.8, chosen=small * i / (n - 1), rejected=-2.0 * i / (n - 1)) for i in range(n)]) == []
    # the chosen reward falls far, the rejected one rises: not "every answer lowered"
    c = Checklist()
    far = -2 * c.chosen_drop
    assert feed(c, [pref(0.5, 0.8, chosen=far * i / (n - 1), rejected=0.1 * i) for i in range(n)]) == []

    # both fall, the rejected one four times as fast: DPO working (measured on the Wivel pairs:
    # chosen -0.78, rejected -3.34 after 27 steps, held-out preference accuracy rising)
    c = Checklist()
    assert feed(c, [pref(0.5 + 0.2 * i, 0.9, chosen=-0.9 * i / (n - 1), rejected=-3.6 * i / (n - 1))
                    for i in range(n)]) == []


def test_a_healthy_run_warns_nothing():
    c = Checklist()
    n = 3 * c.pref_window
    steps = [pref(0.1 + 2.0 * i / n, 0.9, chosen=0.02 * i, rejected=-0.05 * i) for i in range(n)]
    assert feed(c, steps) == []


def test_logs_without_a_margin_warn_nothing():
    c = Checklist()
    sft = [{} for _ in range(3 * c.pref_window)]  # an sft run: stage_metrics finds nothing
    assert feed(c, sft) == []
    # chosen/rejected falling far, accuracy 0.5, but no margin logged: no preference rule applies
    n = 3 * c.pref_window
    no_margin = [{"rewards/chosen": -0.2 * i, "rewards/rejected": -0.3 * i, "rewards/accuracies": 0.5}
                 for i in range(n)]
    assert feed(c, no_margin) == []
    assert feed(c, [pref(float("nan"), 0.5)] * n) == []  # a NaN margin is the NaN rule's


def test_kto_logs_with_a_margin_and_no_accuracy_are_judged_without_crashing():
    # KTO logs rewards/margins, chosen and rejected, and no accuracies: a healthy KTO run is quiet
    c = Checklist()
    n = 2 * c.pref_window
    kto = [{"rewards/margins": 0.5 + 0.1 * i, "rewards/chosen": 0.05 * i, "rewards/rejected": -0.05 * i,
            "kl": 0.1} for i in range(n)]
    assert feed(c, kto) == []
    # its margin running away is still warned
    assert kinds(c.preference(n + 1, {"rewards/margins": c.margin_max + 3})) == ["pref_margin_high"]


# -- 2. cockpit.training.stages --------------------------------------------------------------------

def test_stage_metrics_keeps_rewards_logps_and_kl_and_drops_the_rest():
    logs = {
        "loss": 0.69, "learning_rate": 5e-6, "grad_norm": 1.3, "epoch": 0.25, "mean_token_accuracy": 0.4,
        "rewards/chosen": 0.12, "rewards/rejected": -0.08, "rewards/margins": 0.2, "rewards/accuracies": 0.75,
        "logps/chosen": -55, "logps/rejected": -70.5, "kl": 0.01,
        "rewards/note": "n/a", "logps/none": None, "rewards/list": [1, 2],
    }
    assert stage_metrics(logs) == {
        "rewards/chosen": 0.12, "rewards/rejected": -0.08, "rewards/margins": 0.2, "rewards/accuracies": 0.75,
        "logps/chosen": -55.0, "logps/rejected": -70.5, "kl": 0.01,
    }
    assert all(isinstance(v, float) for v in stage_metrics(logs).values())
    assert stage_metrics({"loss": 1.0, "learning_rate": 1e-4, "grad_norm": 0.5}) == {}  # an sft step


def test_orpo_is_refused_on_one_line_naming_the_trl_version():
    pytest.importorskip("trl")
    installed = version("trl")
    with pytest.raises(CockpitError) as info:
        trl_classes("orpo")
    err = info.value
    line = err.one_line()
    assert "\n" not in line
    assert f"TRL {installed}" in err.message
    assert "stage=dpo" in (err.advice or "")


def test_dpo_and_kto_get_trls_trainer_and_config():
    trl = pytest.importorskip("trl")
    assert trl_classes("dpo") == (trl.DPOTrainer, trl.DPOConfig)
    assert trl_classes("kto") == (trl.KTOTrainer, trl.KTOConfig)
    with pytest.raises(CockpitError):
        trl_classes("sft")


def test_check_stage_refuses_kto_with_a_batch_of_one():
    pytest.importorskip("trl")
    cfg = build_config("cpu-demo", None, {"stage": "kto", "batch_size": 1})
    assert cfg.is_preference
    with pytest.raises(CockpitError) as info:
        check_stage(cfg)
    assert "batch_size" in info.value.one_line() and "kto" in info.value.message
    check_stage(build_config("cpu-demo", None, {"stage": "kto", "batch_size": 2}))  # fine
    check_stage(build_config("cpu-demo", None, {"stage": "dpo", "batch_size": 1}))  # dpo needs no batch
    sft = build_config("cpu-demo", None, {"batch_size": 1})
    assert not sft.is_preference and sft.stage == "sft"
    check_stage(sft)


def test_check_stage_refuses_orpo_before_a_run_exists():
    pytest.importorskip("trl")
    with pytest.raises(CockpitError):
        check_stage(build_config("cpu-demo", None, {"stage": "orpo"}))


def test_the_dashboards_stage_charts_name_numbers_the_run_records():
    assert stage_charts("sft") == () and stage_charts(None) == ()
    for stage in ("dpo", "kto"):
        charts = stage_charts(stage)
        assert charts
        keys = [key for _, lines in charts for _, key in lines]
        assert "rewards/margins" in keys
        for key in keys:
            # step events carry stage_metrics(logs); eval events the eval_* keys of the eval log
            train_key = key[len("eval_"):] if key.startswith("eval_") else key
            assert stage_metrics({train_key: 1.0}) == {train_key: 1.0}, key


# -- 3. the memory estimator's preference stages -------------------------------------------

def test_breakdown_keys_name_a_reference_and_sum_to_the_total():
    assert "reference" in BREAKDOWN_KEYS
    for stage in ("sft", "dpo", "kto", "orpo"):
        for method in ("full", "lora"):
            est = estimate_memory(SMOL, method, batch=4, seq=256, stage=stage)
            assert tuple(est.breakdown) == BREAKDOWN_KEYS
            assert sum(est.breakdown.values()) == est.total_bytes


@pytest.mark.parametrize("method", ["lora", "full"])
def test_dpo_puts_twice_the_sequences_through_the_forward_pass(method):
    # TRL switches dropout off: the same as sft without dropout
    sft = estimate_memory(SMOL, method, batch=4, seq=256, lora_dropout=0.0)
    dpo = estimate_memory(SMOL, method, batch=4, seq=256, stage="dpo")
    assert dpo.batch == 4  # the batch is counted in pairs
    assert dpo.breakdown["activations"] == pytest.approx(2 * sft.breakdown["activations"], rel=0.02)
    assert dpo.breakdown["logits"] >= sft.breakdown["logits"]
    assert dpo.total_bytes > sft.total_bytes
    # 4 pairs = the 8 sequences of an sft batch of 8 (same padding)
    sft8 = estimate_memory(SMOL, method, batch=8, seq=256, lora_dropout=0.0)
    assert dpo.breakdown["activations"] == sft8.breakdown["activations"]
    assert any("8 sequences" in n for n in dpo.notes)


def test_trls_fused_head_on_a_cpu_holds_nine_fp32_tiles():
    """TRL's torch fallback: one tile of min(rows, 4096) x min(V, 32768), nine times in fp32."""
    from cockpit.planning.memory import TRL_CPU_TILE_BUFFERS, trl_head_bytes

    tokens = 8 * 256
    tile = min(tokens, 4096) * min(SMOL.vocab, 32768)
    assert trl_head_bytes(SMOL, tokens, 4, "cpu") == tile * 4 * TRL_CPU_TILE_BUFFERS + 4 * tokens * SMOL.hidden
    assert trl_head_bytes(SMOL, tokens, 2, "cuda") == tile * 2 + 4 * tokens * SMOL.hidden
    # past 4096 rows the tile stops growing: only the hidden states' gradient does
    big, bigger = trl_head_bytes(SMOL, 8192, 4, "cpu"), trl_head_bytes(SMOL, 16384, 4, "cpu")
    assert bigger - big == 4 * 8192 * SMOL.hidden
    dpo = estimate_memory(SMOL, "lora", batch=4, seq=256, stage="dpo")
    assert dpo.breakdown["logits"] == trl_head_bytes(SMOL, tokens, 4, "cpu")


def test_kto_trains_single_answers():
    sft = estimate_memory(SMOL, "lora", batch=4, seq=256, lora_dropout=0.0)
    kto = estimate_memory(SMOL, "lora", batch=4, seq=256, stage="kto")
    assert kto.breakdown["activations"] == sft.breakdown["activations"]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_full_fine_tuning_with_a_reference_holds_a_second_copy_of_the_weights(device):
    sft = estimate_memory(SMOL, "full", batch=2, seq=128, device=device)
    dpo = estimate_memory(SMOL, "full", batch=2, seq=128, device=device, stage="dpo")
    kto = estimate_memory(SMOL, "full", batch=2, seq=128, device=device, stage="kto")
    assert sft.breakdown["reference"] == 0
    weights = weight_bytes(SMOL, "full", device)
    for est in (dpo, kto):
        assert est.breakdown["reference"] == pytest.approx(weights, rel=0.05)
        assert est.breakdown["reference"] == pytest.approx(4 * SMOL.params, rel=0.05)  # fp32
        assert est.details["persistent"] > sft.details["persistent"]
    assert kto.total_bytes - sft.total_bytes == pytest.approx(weights, rel=0.05)  # same batch, + the copy


def test_orpo_has_no_reference():
    orpo = estimate_memory(SMOL, "full", batch=2, seq=128, stage="orpo")
    dpo = estimate_memory(SMOL, "full", batch=2, seq=128, stage="dpo")
    assert orpo.breakdown["reference"] == 0
    assert orpo.breakdown["activations"] == dpo.breakdown["activations"]  # paired like dpo
    assert orpo.total_bytes < dpo.total_bytes


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_a_new_adapter_needs_no_reference_a_continued_one_a_copy_of_it(method):
    new = estimate_memory(SMOL, method, batch=2, seq=128, device="cuda", stage="dpo")
    cont = estimate_memory(SMOL, method, batch=2, seq=128, device="cuda", stage="dpo", continued=True)
    assert new.breakdown["reference"] == 0  # the adapters switched off: the same weights
    adapter = 4 * new.trainable_params  # fp32 adapter weights
    assert cont.breakdown["reference"] == pytest.approx(adapter, rel=0.05)
    assert 0 < cont.breakdown["reference"] < 0.2 * cont.breakdown["weights"]
    assert cont.total_bytes - new.total_bytes == cont.breakdown["reference"]
    # a continued sft adapter has no reference at all
    assert estimate_memory(SMOL, method, batch=2, seq=128, device="cuda", continued=True).breakdown["reference"] == 0


def test_unknown_stage_is_refused():
    with pytest.raises(CockpitError):
        estimate_memory(SMOL, "lora", stage="ppo")


def test_estimate_for_config_follows_stage_method_and_from_run():
    base = estimate_for_config(build_config("cpu-demo", None, {}), device="cpu")
    dpo = estimate_for_config(build_config("cpu-demo", None, {"stage": "dpo"}), device="cpu")
    full = estimate_for_config(build_config("cpu-demo", None, {"stage": "dpo", "method": "full"}), device="cpu")
    cont = estimate_for_config(build_config("cpu-demo", None, {"stage": "dpo", "from_run": "continue",
                                                               "parent_run": "parent-1"}), device="cpu")
    assert base["breakdown"]["reference"] == 0
    assert dpo["breakdown"]["reference"] == 0
    assert dpo["breakdown"]["activations"] == pytest.approx(2 * base["breakdown"]["activations"], rel=0.02)
    assert full["breakdown"]["reference"] == pytest.approx(full["breakdown"]["weights"], rel=0.05)
    assert cont["breakdown"]["reference"] == pytest.approx(4 * cont["trainable_params"], rel=0.05)
    assert cont["total_bytes"] > dpo["total_bytes"]
    # continue without a parent run (a run that is not yet created) counts a new adapter
    alone = estimate_for_config(build_config("cpu-demo", None, {"stage": "dpo", "from_run": "continue"}),
                                device="cpu")
    assert alone["breakdown"]["reference"] == 0


# -- 4. llm-cockpit plan --stage ----------------------------------------------------------

def plan(capsys, *args):
    from cockpit.cli.main import main

    capsys.readouterr()
    assert main(["plan", BUNDLED, "--vram", "24", *args]) == 0
    return capsys.readouterr().out


def rows(text, key):
    return [line for line in text.splitlines() if line.strip().startswith(key + " ")]


def test_plan_stage_dpo_shows_the_stage_and_a_reference_row(capsys):
    out = plan(capsys, "--stage", "dpo")
    setup = [line for line in out.splitlines() if line.startswith("Setup")]
    assert setup and "stage dpo" in setup[0]
    assert len(rows(out, "reference")) == 1
    full = plan(capsys, "--stage", "dpo", "--method", "full")
    (ref,) = rows(full, "reference")
    assert len(rows(full, "weights")) == 1
    assert "0 B" not in ref and "#" in ref  # a real copy, drawn in the bar chart


def test_plan_sft_has_no_reference_row_and_no_stage(capsys):
    out = plan(capsys)
    assert rows(out, "reference") == []
    assert rows(out, "weights") and rows(out, "activations")
    assert "stage" not in [line for line in out.splitlines() if line.startswith("Setup")][0]


def test_plan_json_names_the_stage(capsys):
    dpo = json.loads(plan(capsys, "--stage", "dpo", "--json"))
    sft = json.loads(plan(capsys, "--json"))
    assert dpo["stage"] == "dpo" and sft["stage"] == "sft"
    assert dpo["total_bytes"] == sum(dpo["breakdown"].values())
    assert dpo["breakdown"]["activations"] > sft["breakdown"]["activations"]
    assert sft["breakdown"].get("reference", 0) == 0
    full = json.loads(plan(capsys, "--stage", "dpo", "--method", "full", "--json"))
    assert full["breakdown"]["reference"] > 0 and full["method"] == "full"


# -- 5. the follower's stage series -------------------------------------------------------

def test_step_and_eval_metrics_fill_the_stage_series():
    state = RunState()
    state.apply_all([
        ev.RunStarted(config={"stage": "dpo", "model": BUNDLED}, model=BUNDLED, method="lora", total_steps=10),
        ev.Step(step=1, loss=0.69, metrics={"rewards/margins": 0.1, "rewards/accuracies": 0.5}),
        ev.Step(step=2, loss=0.6, metrics={"rewards/margins": 0.3}),
        ev.Eval(step=2, eval_loss=0.65, metrics={"eval_rewards/margins": 0.2}),
    ])
    assert state.stage == "dpo"
    margins = state.stage_series["rewards/margins"]
    assert margins.steps == [1.0, 2.0] and margins.values == [0.1, 0.3]
    assert margins.last == 0.3
    assert state.stage_series["rewards/accuracies"].values == [0.5]
    assert state.stage_series["eval_rewards/margins"].steps == [2.0]
    assert state.stage_series["eval_rewards/margins"].last == 0.2
    assert state.series["loss"].values == [0.69, 0.6] and state.eval_loss == 0.65


def test_non_finite_stage_numbers_are_not_charted():
    state = RunState()
    state.apply(ev.Step(step=1, loss=0.7, metrics={"rewards/margins": float("nan")}))
    state.apply(ev.Step(step=2, loss=0.7, metrics={"rewards/margins": 0.4}))
    assert state.stage_series["rewards/margins"].values == [0.4]


def test_stage_defaults_to_sft():
    assert RunState().stage == "sft"
    state = RunState()
    state.apply(ev.RunStarted(config={"model": BUNDLED}))
    assert state.stage == "sft"
    state.apply(ev.Step(step=1, loss=1.0))  # an sft step: no stage numbers
    assert state.stage_series == {}
    kto = RunState()
    kto.apply(ev.RunStarted(config={"stage": "kto"}))
    assert kto.stage == "kto"
