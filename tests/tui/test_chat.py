"""The chat screen on a tiny random model with a LoRA adapter: a turn streams into the
screen, side by side shows the base model's answer (and the GGUF's, once exported), the
layout at 80x24 and 120x40, a model too big for the free memory, and the ways in (the
dashboard's and the runs list's ``t``)."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from cockpit.run import events as ev
from cockpit.chat.session import BASE, GGUF, TUNED, ChatSettings
from screens.chat import ChatScreen
from screens.dashboard import DashboardScreen
from screens.runs import RunsScreen
from tests.chat_helpers import SYSTEM, build_chatty_model, export_gguf, make_chat_run
from tests.tui.conftest import make_app, run_async, wait_for
from widgets.chat_log import ChatLog

QUESTION = "What does wv.drizzle do?"


@pytest.fixture(scope="module")
def chat_base(tmp_path_factory):
    return build_chatty_model(tmp_path_factory.mktemp("chat-base") / "model")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, chat_base):
    run = make_chat_run(tmp_path_factory.mktemp("chat-runs"), chat_base)
    sink = ev.JsonlSink(run / "events.jsonl")  # what the dashboard replays
    sink.emit(ev.RunStarted(step=0, model=str(chat_base), method="lora", total_steps=4))
    sink.emit(ev.RunFinished(step=4, state="finished", summary={"final_loss": 2.5}))
    sink.close()
    return run


def chat_app(run, *, size_free: int | None = None, side_by_side: bool = False, max_new: int = 8, **kw):
    settings = ChatSettings(max_new_tokens=max_new, system_prompt=SYSTEM)
    return make_app("chat", output_dir=run.parent, chat={"target": run, "settings": settings,
                                                         "side_by_side": side_by_side, "free_bytes": size_free, **kw})


def chat_screen(app) -> ChatScreen:
    assert isinstance(app.screen, ChatScreen), app.screen
    return app.screen


async def ready(pilot, app, timeout: float = 60.0) -> ChatScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.state in ("ready", "refused"),
                   timeout=timeout, what="the model to load")
    return chat_screen(app)


async def say(pilot, app, text: str) -> ChatScreen:
    screen = chat_screen(app)
    for key in text:
        await pilot.press(key if key != " " else "space")
    await pilot.press("enter")
    log = screen.query_one("#log-tuned", ChatLog)
    await wait_for(pilot, lambda: f"you: {text}" in log.texts and screen.state == "ready", timeout=60,
                   what="the answer")
    await pilot.pause(0.05)
    return screen


def test_a_chat_turn_streams_into_the_screen(lora_run):
    app = chat_app(lora_run, max_new=120)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await ready(pilot, app)
            assert screen.state == "ready", screen.error
            assert "greedy · max 120 tokens · system prompt" in str(screen.query_one("#chat-status").content)
            assert screen.focused is screen.query_one("#chat-input", Input)
            await say(pilot, app, QUESTION)
            log = screen.query_one("#log-tuned", ChatLog)
            answer = screen.session.history(TUNED)[1]["content"]
            assert answer and log.answer_text == answer
            assert f"you: {QUESTION}" in log.texts and answer in log.texts
            assert log.updates >= 2, "the answer arrived in one piece: not streamed"
            assert not screen.query_one("#col-base").display  # one side until ctrl+b
            await pilot.press("escape")  # the chat was the first screen: leaving it ends the app
        assert app.return_code == 0

    run_async(go())


def test_side_by_side_shows_both_answers_stacked_at_80x24(lora_run, tmp_path):
    app = chat_app(lora_run, with_gguf=False, save_path=tmp_path / "kept.jsonl")

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await ready(pilot, app)
            await pilot.press("ctrl+b")
            await wait_for(pilot, lambda: screen.state == "ready" and screen.query_one("#col-base").display,
                           timeout=30, what="side by side")
            await say(pilot, app, QUESTION)
            tuned = screen.query_one("#log-tuned", ChatLog).answer_text
            base = screen.query_one("#log-base", ChatLog).answer_text
            assert tuned == screen.session.history(TUNED)[1]["content"]
            assert base == screen.session.history(BASE)[1]["content"]
            assert tuned and base and tuned != base
            top, bottom = screen.query_one("#col-tuned").region, screen.query_one("#col-base").region
            assert bottom.y > top.y and top.height >= 4 and bottom.height >= 4  # stacked, both readable
            assert screen.query_one("#chat-input").region.bottom <= 23  # above the footer, on screen
            await pilot.resize_terminal(120, 40)
            await pilot.pause(0.2)
            left, right = screen.query_one("#col-tuned").region, screen.query_one("#col-base").region
            assert left.y == right.y and right.x > left.x and left.height > 20  # columns from 120 cells on
            await pilot.press("ctrl+s")
            await pilot.pause(0.1)
            assert (tmp_path / "kept.jsonl").read_text().count('"messages"') == 1
            await pilot.press("ctrl+r")
            assert screen.session.history(TUNED) == [] and screen.query_one("#log-tuned", ChatLog).texts == []

    run_async(go())


def test_a_model_too_big_for_the_free_memory_shows_the_estimate_and_advice(lora_run):
    app = chat_app(lora_run, size_free=2**20)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await ready(pilot, app)
            assert screen.state == "refused"
            text = str(screen.query_one("#chat-error").content)
            assert "needs about" in text and "only 1.0 MiB of RAM is free" in text
            assert "close other programs" in text and "llm-cockpit export RUN --quant q4_k_m" in text
            assert screen.query_one("#chat-error").region.height >= 3  # visible at 80x24
            assert screen.query_one("#chat-input", Input).disabled
            assert screen.session is not None and not screen.session.loaded

    run_async(go())


@pytest.mark.slow
def test_three_answers_side_by_side_with_an_exported_gguf(chat_base, tmp_path):
    pytest.importorskip("llama_cpp")
    run = make_chat_run(tmp_path, chat_base)
    export_gguf(run)
    app = chat_app(run, side_by_side=True)

    async def go():
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await ready(pilot, app)
            await say(pilot, app, QUESTION)
            answers = {k: screen.query_one(f"#log-{k}", ChatLog).answer_text for k in (TUNED, BASE, GGUF)}
            assert all(answers.values()), answers
            assert answers[GGUF] == screen.session.history(GGUF)[1]["content"]
            regions = [screen.query_one(f"#col-{k}").region for k in (TUNED, BASE, GGUF)]
            assert len({r.y for r in regions}) == 1 and regions[0].x < regions[1].x < regions[2].x  # columns

    run_async(go())


def test_dashboard_and_runs_list_open_the_chat_with_t(lora_run):
    from cockpit.run.status import write_status

    failed = lora_run.parent / "2026-01-02_00-00-00-failed"  # newer: first in the runs list
    (failed / "checkpoints").mkdir(parents=True)
    (failed / "config_used.yaml").write_text((lora_run / "config_used.yaml").read_text())
    write_status(failed, state="failed", pid=0, step=1, total_steps=4)

    app = make_app("dashboard", output_dir=lora_run.parent, run_dir=lora_run)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.state.state == "finished", what="the replay")
            await pilot.press("t", "escape")  # back while it still loads: the load ends unseen
            left = app.screen_stack[-1]
            assert isinstance(left, DashboardScreen)
            await pilot.pause(0.2)
            await pilot.press("t")
            screen = await ready(pilot, app)
            assert screen.state == "ready" and screen.session.run_dir == lora_run.resolve()
            await pilot.press("escape")
            assert isinstance(app.screen, DashboardScreen)
            app.open_runs()
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs list")
            await pilot.pause(0.1)
            await pilot.press("t")  # the newest run, first in the list, failed
            await pilot.pause(0.1)
            assert isinstance(app.screen, RunsScreen)
            assert any("finished or stopped" in n.message for n in app._notifications)
            await pilot.press("down", "t")
            screen = await ready(pilot, app)
            assert screen.session.run_dir == lora_run.resolve()
            await pilot.press("escape")
            assert isinstance(app.screen, RunsScreen)

    run_async(go())
