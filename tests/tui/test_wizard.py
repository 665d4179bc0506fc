"""Every wizard step at 80x24, driven with the keyboard alone, and a real start on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, Input, OptionList, RadioSet

from cockpit.config import BUNDLED_MODEL
from screens.dashboard import DashboardScreen
from screens.data import DataScreen
from screens.filepicker import DataTree, FilePickerScreen
from screens.hardware import HardwareScreen
from screens.method import MethodScreen
from screens.model import ModelScreen
from screens.review import ReviewScreen
from screens.start import StartScreen
from screens.welcome import WelcomeScreen
from cockpit.app.wizard import MethodChoice, ModelChoice
from tests.tui.conftest import expected_config, gpu_profile, make_app, make_engine, run_async, wait_for


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


def next_enabled(screen) -> bool:
    return not screen.query_one("#step-next", Button).disabled


def test_walk_through_every_step_with_the_keyboard(tmp_path, at_repo):
    app = make_app("wizard", output_dir=tmp_path / "runs")

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            assert isinstance(app.screen, WelcomeScreen)
            assert "No runs yet" in text_of(app.screen, "#step-status")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, HardwareScreen) and next_enabled(app.screen),
                           what="the hardware probe")
            assert "No NVIDIA GPU found" in text_of(app.screen, "#hw-lines")
            assert "Example CPU, 4 cores" in text_of(app.screen, "#hw-lines")
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, ModelScreen)
            model_screen = app.screen
            assert model_screen.model == BUNDLED_MODEL
            assert "base model would serve this task better" in text_of(model_screen, "#model-advice")
            await pilot.press("enter")  # pick the highlighted model: focus moves to the task question
            assert model_screen.focused is model_screen.query_one(RadioSet)
            await pilot.press("down", "down", "enter")  # "extend what it already does"
            assert model_screen.task == "extend"
            assert "A good start for this task" in text_of(model_screen, "#model-advice")
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, MethodScreen)
            assert "fits" in text_of(app.screen, "#method-bar") and next_enabled(app.screen)
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, DataScreen)
            await wait_for(pilot, lambda: app.screen.view is not None, timeout=60, what="the data report")
            assert "72 examples" in text_of(app.screen, "#data-report") and next_enabled(app.screen)
            assert "(format: prompt_completion)" in text_of(app.screen, "#data-report")
            shown = app.screen.query_one("#data-examples").render()
            assert "wv.drizzle" in str(shown) and "<|im_start|>assistant" in str(shown)
            learned = "".join(str(shown)[s.start:s.end] for s in shown.spans if "green" in str(s.style))
            assert learned.startswith("wv.drizzle(ML, BED) waters") and "<|im_start|>" not in learned
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, ReviewScreen)
            assert "108 optimizer steps" in text_of(app.screen, "#review-estimate")
            await pilot.press(*"epochs=2", "enter")
            assert "36 optimizer steps" in text_of(app.screen, "#review-estimate")
            await pilot.press(*"lr=banana", "enter")
            assert "lr" in text_of(app.screen, "#step-status") and app.screen.cfg.lr == 1e-3
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, StartScreen)
            assert app.screen.cfg == expected_config(tmp_path / "runs")  # the plain wizard's too
            await pilot.press("escape")  # back: the review keeps the edit
            assert isinstance(app.screen, ReviewScreen) and app.screen.cfg.epochs == 2

    run_async(go())


def test_method_step_shows_the_ladder_and_applies_the_recommendation():
    engine = make_engine("outputs/runs", gpu_profile(total_gib=12, free_gib=10))
    app = make_app("runs", output_dir="outputs/runs-none")
    screen = MethodScreen(engine, "meta-llama/Llama-3.1-8B",
                          MethodChoice(method="lora", batch_size=4, max_length=512, lora_r=16))

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            assert "does NOT fit" in text_of(screen, "#method-bar")
            assert screen.query_one("#method-ladder-box").display
            assert "qlora" in text_of(screen, "#method-ladder") and not next_enabled(screen)
            await pilot.press("u")
            await pilot.pause()
            choice = screen.result()
            assert (choice.method, choice.batch_size, choice.grad_accum, choice.grad_ckpt, choice.model) == (
                "qlora", 1, 4, True, None)
            assert next_enabled(screen) and "- fits" in text_of(screen, "#method-bar")

    run_async(go())


def test_method_step_on_a_small_gpu_suggests_a_smaller_model():
    engine = make_engine("outputs/runs", gpu_profile(total_gib=8, free_gib=7.5))
    app = make_app("runs", output_dir="outputs/runs-none")
    screen = MethodScreen(engine, "meta-llama/Llama-3.1-8B")

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            assert "meta-llama/Llama-3.2-3B" in text_of(screen, "#method-rec")
            choice = screen.result()  # auto: the advisor's answer, smaller model included
            assert choice.model == "meta-llama/Llama-3.2-3B" and choice.method in ("lora", "int8", "qlora")

    run_async(go())


async def enter_data(pilot, screen, path, until, what: str) -> None:
    """Type a data source into the data step's path field and wait for its report."""
    field = screen.query_one("#data-path", Input)
    field.value = str(path)
    field.focus()
    await pilot.press("enter")
    await wait_for(pilot, until, timeout=30, what=what)


def test_data_step_refuses_a_broken_file_and_takes_the_demo(tmp_path, at_repo):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{not json\n{"prompt": "", "completion": "x"}\n',
                   encoding="utf-8")
    engine = make_engine(tmp_path / "runs")
    app = make_app("runs", output_dir=tmp_path / "runs")
    screen = DataScreen(engine, BUNDLED_MODEL, 256)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await wait_for(pilot, lambda: screen.view is not None, timeout=60, what="the demo report")
            await enter_data(pilot, screen, bad, lambda: screen.view is not None
                             and screen.view.report.path.endswith("bad.jsonl"), "the bad report")
            field = screen.query_one("#data-path", Input)
            assert "NOT OK" in text_of(screen, "#data-report") and ":2:" in text_of(screen, "#data-report")
            assert not next_enabled(screen) and screen.result() is None
            field.value = str(tmp_path / "missing.jsonl")
            await pilot.press("enter")
            await wait_for(pilot, lambda: "missing.jsonl" in text_of(screen, "#data-report"), what="the error")
            assert not next_enabled(screen)
            # nothing of the last file stays on screen as if it described this one
            assert text_of(screen, "#data-examples").strip() == ""
            assert "no lengths measured" in text_of(screen, "#data-hist")
            await pilot.click("#data-demo")
            await wait_for(pilot, lambda: screen.view is not None and screen.view.report.ok, timeout=30,
                           what="the demo again")
            assert screen.result().eval_data == "data/dsl_eval.jsonl"

    run_async(go())


def test_model_step_at_80x24_shows_the_task_question_and_the_advice_without_scrolling(tmp_path):
    engine = make_engine(tmp_path / "runs")
    app = make_app("runs", output_dir=tmp_path / "runs")
    screen = ModelScreen(engine)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            body = screen.query_one(".body")
            question = screen.query_one("#model-right .section")
            advice = screen.query_one("#model-advice")
            assert "What should the training do?" in str(question.render())
            assert "base model would serve this task better" in text_of(screen, "#model-advice")
            # the default (bundled instruct model, task "new") has the longest advice of the catalog
            for widget in (question, screen.query_one("#model-task"), advice, screen.query_one("#model-list")):
                assert body.region.contains_region(widget.region), (widget, widget.region, body.region)
            assert body.max_scroll_y == 0 and body.scroll_y == 0  # nothing below the fold
            wrapped = advice.get_content_height(advice.size, screen.size, advice.content_region.width)
            assert wrapped == 10 and advice.content_region.height >= wrapped  # every line of it drawn
            assert screen.query_one("#model-list").region.height >= 5  # and the list still shows five models
            labels = [str(b.label) for b in screen.query_one(RadioSet).query("RadioButton")]
            assert labels == ["Teach something new", "Change its behaviour", "Extend its own domain"]
            await pilot.resize_terminal(120, 40)  # the wide layout keeps the long answers and the lead
            await pilot.pause()
            assert str(screen.query_one(RadioSet).query("RadioButton").first().label).endswith("(language, format, facts)")
            assert screen.query_one(".lead").display and not screen.query_one("#model-hint").display
            assert body.region.contains_region(advice.region) and body.max_scroll_y == 0

    run_async(go())


def test_model_step_rejects_what_cannot_be_planned(tmp_path):
    engine = make_engine(tmp_path / "runs")
    app = make_app("runs", output_dir=tmp_path / "runs")
    screen = ModelScreen(engine)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            options = screen.query_one(OptionList)
            assert options.option_count == len(engine.models())
            screen.query_one("#model-custom", Input).focus()
            await pilot.press(*"no-such-model")
            assert "not in the catalog" in text_of(screen, "#model-advice") and not next_enabled(screen)
            await pilot.press("ctrl+n")
            assert app.screen is screen
            await pilot.press("ctrl+a", "ctrl+k")  # clear the field: back to the list's model
            await pilot.pause()
            assert next_enabled(screen) and screen.result().model == BUNDLED_MODEL

    run_async(go())


def test_wizard_starts_a_real_run_on_a_tiny_model_and_the_dashboard_follows_it(tmp_path, tiny_model_dir, at_repo):
    runs = tmp_path / "runs"
    app = make_app("wizard", output_dir=runs)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, HardwareScreen) and next_enabled(app.screen))
            await pilot.press("ctrl+n", "tab")  # the model list, then the field for any model
            await pilot.press(*str(tiny_model_dir))
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, MethodScreen), app.screen
            await pilot.press("ctrl+n")
            await wait_for(pilot, lambda: isinstance(app.screen, DataScreen) and app.screen.view is not None,
                           timeout=60, what="the data report")
            await pilot.press("ctrl+n")
            assert isinstance(app.screen, ReviewScreen)
            await pilot.press(*"max_steps=4 batch_size=2 max_length=64 sample_every=2 sample_count=1 "
                                "sample_max_new_tokens=3 eval_steps=0 save_steps=100", "enter")
            assert app.screen.cfg.max_steps == 4, text_of(app.screen, "#step-status")
            await pilot.press("ctrl+n", "ctrl+n")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), timeout=30, what="the start")
            run_dir = app.screen.run_dir
            assert run_dir.parent == runs and (run_dir / "config_used.yaml").is_file()
            await wait_for(pilot, lambda: app.screen.state.state == "finished", timeout=150, what="the tiny run")
            state = app.screen.state
            assert state.step == 4 and len(state.series["loss"]) == 4 and state.samples
            assert app.screen.updates >= 2  # it followed the run, not just read it at the end
            assert Path(state.config["model"]) == tiny_model_dir

    run_async(go())


def test_data_step_browses_for_a_file(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    mine = tmp_path / "mine" / "train.jsonl"
    mine.write_text('{"prompt": "p1", "completion": "c1"}\n{"prompt": "p2", "completion": "c2"}\n', encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not data", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    engine = make_engine(tmp_path / "runs")
    app = make_app("runs", output_dir=tmp_path / "runs")
    screen = DataScreen(engine, BUNDLED_MODEL, 256)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            screen.query_one("#data-browse", Button).focus()
            await pilot.press("enter")
            picker = app.screen
            assert isinstance(picker, FilePickerScreen)
            tree = picker.query_one(DataTree)
            await wait_for(pilot, lambda: tree.root.children, what="the directory listing")
            assert [n.label.plain for n in tree.root.children] == ["mine"]  # no notes.txt, no hidden files
            await pilot.press("down", "enter")  # open "mine"
            await wait_for(pilot, lambda: tree.root.children[0].children, what="the sub-directory")
            await pilot.press("down", "enter")  # pick train.jsonl
            assert app.screen is screen
            assert screen.query_one("#data-path", Input).value == "mine/train.jsonl"
            await wait_for(pilot, lambda: screen.view is not None, timeout=60, what="the report")
            assert screen.result().data == "mine/train.jsonl" and screen.result().examples == 2

    run_async(go())


def test_data_step_takes_a_directory_of_alpaca_json(tmp_path, at_repo):
    import json

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = [{"instruction": f"What does glorp {i} do?", "input": "", "output": f"It turns valve {i}."} for i in range(6)]
    (corpus / "train.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    (corpus / "test.json").write_text(json.dumps(rows[:2], indent=2), encoding="utf-8")
    engine = make_engine(tmp_path / "runs")
    app = make_app("runs", output_dir=tmp_path / "runs")
    screen = DataScreen(engine, BUNDLED_MODEL, 256)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await wait_for(pilot, lambda: screen.view is not None, timeout=60, what="the demo report")
            await enter_data(pilot, screen, corpus, lambda: screen.view is not None
                             and "train.json" in screen.view.report.path, "the directory's report")
            report = text_of(screen, "#data-report")
            assert "6 examples" in report and "(format: alpaca)" in report
            assert screen.query_one("#data-eval", Input).value == ""  # the demo's eval file went with the demo
            assert "It turns valve 0." in text_of(screen, "#data-examples")
            screen.query_one("#data-eval", Input).value = str(corpus / "nope.json")
            assert screen.result() is None and "does not exist" in text_of(screen, "#step-status")
            screen.query_one("#data-eval", Input).value = str(corpus / "test.json")
            assert screen.result().examples == 6

    run_async(go())


def test_data_step_takes_preference_pairs_as_dpo_data(tmp_path, at_repo):
    engine = make_engine(tmp_path / "runs")
    app = make_app("runs", output_dir=tmp_path / "runs")
    screen = DataScreen(engine, BUNDLED_MODEL, 256)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await wait_for(pilot, lambda: screen.view is not None, timeout=60, what="the demo report")
            await enter_data(pilot, screen, Path("data/dsl_pref_train.jsonl"), lambda: screen.view is not None
                             and "dsl_pref_train" in screen.view.report.path, "the pairs' report")
            assert "72 pairs" in text_of(screen, "#data-report")
            assert "stage=dpo" in text_of(screen, "#step-status") and next_enabled(screen)
            screen.query_one("#data-eval", Input).value = "data/dsl_eval.jsonl"  # supervised: no pairs
            assert screen.result() is None and "no preference pairs" in text_of(screen, "#step-status")
            screen.query_one("#data-eval", Input).value = "data/dsl_pref_eval.jsonl"
            choice = screen.result()
            assert choice.stage == "dpo" and choice.examples == 72
            cfg = engine.build_config(ModelChoice(), MethodChoice(), choice)
            assert cfg.stage == "dpo" and cfg.lr == 2e-4 and cfg.beta == 0.1  # the preference preset's schedule

    run_async(go())


def test_model_step_offers_to_continue_from_a_finished_run(tmp_path, tiny_model_dir):
    from cockpit.config import config_from_dict, config_to_yaml
    from cockpit.run.rundir import CONFIG_FILE
    from cockpit.run.status import write_status

    runs = tmp_path / "runs"
    run = runs / "2026-12-03_09-00-00"
    (run / "model").mkdir(parents=True)
    cfg = config_from_dict({"model": str(tiny_model_dir), "output_dir": str(runs)})
    (run / CONFIG_FILE).write_text(config_to_yaml(cfg), encoding="utf-8")
    write_status(run, state="finished", pid=0, step=4, total_steps=4, model=str(tiny_model_dir), method="lora")
    engine = make_engine(runs)
    app = make_app("runs", output_dir=runs)
    screen = ModelScreen(engine)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(screen)
            await pilot.pause()
            options = screen.query_one(OptionList)
            assert options.option_count == len(engine.models()) + 1
            options.highlighted = options.option_count - 1
            await pilot.pause()
            assert "Continue from a finished run" in text_of(screen, "#model-advice")
            assert "stage=dpo" in text_of(screen, "#model-advice") and next_enabled(screen)
            assert "from_run=continue" in text_of(screen, "#model-advice")
            assert screen.result().model == str(run)
            assert engine.spec(str(run)).layers == engine.spec(str(tiny_model_dir)).layers

    run_async(go())
