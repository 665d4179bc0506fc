"""Chat on a tiny random model with a LoRA adapter: multi-turn prompts through the chat
template, the base side with the adapters disabled, saving as training data, the size
refusal before loading, the slash commands, the GGUF side, and ``chat --plain`` as a user
runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from cockpit.chat.session import BASE, GGUF, TUNED, ChatSession
from cockpit.chat.commands import run_command
from cockpit.errors import CockpitError
from tests.chat_helpers import SYSTEM, build_chatty_model, export_gguf, make_chat_run

MAX_NEW = 8


@pytest.fixture(scope="module")
def chat_base(tmp_path_factory):
    return build_chatty_model(tmp_path_factory.mktemp("chat-base") / "model")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, chat_base):
    return make_chat_run(tmp_path_factory.mktemp("chat-runs"), chat_base)


@pytest.fixture(scope="module")
def session(lora_run):
    """One loaded session for the module (tests reset it): the fine-tuned side and the base."""
    s = ChatSession(lora_run, side_by_side=True, with_gguf=False)
    s.settings.max_new_tokens = MAX_NEW
    s.load()
    yield s
    s.close()


@pytest.fixture()
def fresh(session):
    session.reset()
    session.settings.temperature, session.settings.top_p = 0.0, 1.0
    session.settings.max_new_tokens = MAX_NEW
    session.settings.system_prompt = SYSTEM
    session.side_by_side = True
    return session


def test_multi_turn_history_goes_through_the_chat_template(fresh):
    from cockpit.data.tokenize import prompt_token_ids

    fresh.side_by_side = False
    first = fresh.ask("What does wv.drizzle do?")[TUNED]
    second = fresh.ask("And wv.fog?")[TUNED]
    assert first and second
    history = fresh.history(TUNED)
    assert history == [{"role": "user", "content": "What does wv.drizzle do?"},
                       {"role": "assistant", "content": first},
                       {"role": "user", "content": "And wv.fog?"},
                       {"role": "assistant", "content": second}]
    answerer = fresh.side(TUNED).answerer
    expected = prompt_token_ids(answerer.tokenizer, [{"role": "system", "content": SYSTEM}] + history[:3])
    assert answerer.last_prompt_ids == expected
    text = answerer.tokenizer.decode(expected)
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>")
    assert f"<|im_start|>assistant\n{first}<|im_end|>" in text  # the first answer is part of the second prompt
    assert text.endswith("<|im_start|>user\nAnd wv.fog?<|im_end|>\n<|im_start|>assistant\n")
    assert fresh.side(BASE).history == []  # side by side was off: the base said nothing


def test_base_side_is_the_adapters_disabled_model_and_answers_stream(fresh):
    from cockpit.models.generate import adapters_off, generate

    chunks = list(fresh.send("What does wv.drizzle do?"))
    answers = {c.side: c.answer for c in chunks if c.done}
    streamed = [c for c in chunks if c.side == TUNED and c.text]
    assert len(streamed) >= 2, "the answer came in one piece, not streamed"
    model, tok = fresh.side(TUNED).answerer.model, fresh.side(TUNED).answerer.tokenizer
    tuned = generate(model, tok, ["What does wv.drizzle do?"], MAX_NEW, system_prompt=SYSTEM)[0]
    with adapters_off(model):
        base = generate(model, tok, ["What does wv.drizzle do?"], MAX_NEW, system_prompt=SYSTEM)[0]
    assert answers[TUNED] == tuned and answers[BASE] == base
    assert answers[TUNED] != answers[BASE], "the adapter changed nothing: the test proves nothing"
    assert fresh.side(BASE).answerer.model is model  # one copy of the weights
    assert len(fresh.history(BASE)) == 2 and fresh.history(BASE)[1]["content"] == base


def test_save_appends_a_messages_example_the_trainer_reads(fresh, tmp_path):
    from cockpit.data.loading import load_examples_strict

    answer = fresh.ask("What does wv.drizzle do?")
    out = tmp_path / "keep.jsonl"
    path, turns = fresh.save(out)
    fresh.save(out, side=BASE)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert path == out and turns == 1 and len(lines) == 2
    first = json.loads(lines[0])
    assert first == {"messages": [{"role": "system", "content": SYSTEM},
                                  {"role": "user", "content": "What does wv.drizzle do?"},
                                  {"role": "assistant", "content": answer[TUNED]}]}
    assert json.loads(lines[1])["messages"][-1]["content"] == answer[BASE]
    examples = load_examples_strict(str(out))
    assert len(examples) == 2 and examples[0].completion == answer[TUNED]
    fresh.reset()
    with pytest.raises(CockpitError, match="said nothing yet"):
        fresh.save(out)


def test_a_model_too_big_for_the_free_memory_is_refused_before_loading(lora_run, chat_base):
    phases: list[str] = []
    for target in (lora_run, chat_base):
        s = ChatSession(target, free_bytes=8 * 2**20)
        with pytest.raises(CockpitError) as info:
            s.load(lambda phase, message: phases.append(phase))
        line = info.value.one_line()
        assert "\n" not in line
        assert "needs about" in line and "MiB to chat" in line and "only 8.0 MiB of RAM is free" in line
        assert "weights 24.3 MiB" in line  # the estimate, read from the safetensors headers
        assert "close other programs" in line and ("export the run" in line if target == lora_run else
                                                    "smaller or quantized model" in line)
        assert not s.loaded
    assert "checking_memory" in phases and "loading_weights" not in phases


def test_a_full_fine_tune_base_is_a_second_model_checked_against_what_is_left(chat_base, tmp_path):
    from cockpit.chat.fit import hf_estimate
    from cockpit.models.catalog import resolve_spec

    run = make_chat_run(tmp_path, chat_base, method="full")
    one = hf_estimate("x", chat_base, resolve_spec(str(chat_base), network=False), context=2048, device="cpu").total
    s = ChatSession(run, side_by_side=True, with_gguf=False, free_bytes=int(one * 1.5))
    s.settings.max_new_tokens = 4
    s.load()
    try:
        assert s.side(TUNED).available
        assert not s.side(BASE).available and "needs about" in s.side(BASE).note
        assert "chat without the base model" in s.side(BASE).note
        answers = list(s.send("hi"))
        assert [c.note for c in answers if c.side == BASE and c.done] == [s.side(BASE).note]
    finally:
        s.close()
    roomy = ChatSession(run, side_by_side=True, with_gguf=False, free_bytes=int(one * 2.5))
    roomy.settings.max_new_tokens = 4
    roomy.load()
    try:
        assert roomy.side(BASE).available and roomy.side(BASE).answerer.model is not roomy.side(TUNED).answerer.model
        out = roomy.ask("hi")
        assert out[TUNED] != out[BASE]  # the full fine-tune changed the output layer
    finally:
        roomy.close()


def test_slash_commands_change_the_settings_and_say_what_is_wrong(fresh, tmp_path):
    assert run_command(fresh, "/temp 0.7").message == "temperature 0.7"
    assert run_command(fresh, "/top_p 0.9").message == "top-p 0.9"
    assert run_command(fresh, "/max 16").message == "at most 16 new tokens per answer"
    assert fresh.settings.describe() == "temperature 0.7 · top-p 0.9 · max 16 tokens · system prompt"
    bad = run_command(fresh, "/max 0")
    assert bad.error and "max '0' is not allowed -> give a whole number" in bad.message
    assert run_command(fresh, "/temp hot").error
    assert run_command(fresh, "/system off").message == "system prompt off" and fresh.settings.system_prompt is None
    assert run_command(fresh, "/sides off").side_by_side is False
    assert run_command(fresh, "/frobnicate").error
    assert run_command(fresh, "/quit").quit
    fresh.settings.temperature = 0.0
    fresh.ask("hi")
    saved = run_command(fresh, f"/save {tmp_path / 'x.jsonl'} base")
    assert not saved.error and "the base model side" in saved.message
    assert json.loads((tmp_path / "x.jsonl").read_text())["messages"][0] == {"role": "user", "content": "hi"}
    assert "forgotten" in run_command(fresh, "/reset").message and fresh.history(TUNED) == []


def test_sampling_with_a_temperature_gives_answers(fresh):
    fresh.settings.set("temp", "1.0")
    fresh.side_by_side = False
    answers = {fresh.ask("hi")[TUNED] for _ in range(3)}
    assert all(isinstance(a, str) for a in answers) and len(answers) >= 2


def test_gguf_side_without_llama_cpp_says_so_in_one_line(lora_run, monkeypatch):
    (lora_run / "export").mkdir(exist_ok=True)
    fake = lora_run / "export" / "never-loaded.gguf"
    fake.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp fails, as when it is not installed
    s = ChatSession(lora_run, side_by_side=True)
    s.settings.max_new_tokens = 2
    try:
        s.load()
        side = s.side(GGUF)
        assert not side.available and "llama-cpp-python is not importable" in side.note
        assert "llm-cockpit export --install-runtime" in side.note and "\n" not in side.note
        assert s.side(TUNED).available and s.side(BASE).available
    finally:
        s.close()
        fake.unlink()


def test_gguf_side_answers_through_llama_cpp(chat_base, tmp_path):
    pytest.importorskip("llama_cpp")
    run = make_chat_run(tmp_path, chat_base)
    gguf = export_gguf(run)
    s = ChatSession(run, side_by_side=True)
    s.settings.max_new_tokens = MAX_NEW
    try:
        s.load()
        assert s.side(GGUF).available and gguf.name in s.side(GGUF).label
        chunks = list(s.send("What does wv.drizzle do?"))
        answers = {c.side: c.answer for c in chunks if c.done}
        assert set(answers) == {TUNED, BASE, GGUF}
        assert answers[GGUF], "llama.cpp gave an empty answer"
        # the merged f16 export, greedy: it starts as the adapter on its base does
        assert answers[GGUF][:8] == answers[TUNED][:8]
        assert s.ask("And then?")[GGUF] and len(s.history(GGUF)) == 4
    finally:
        s.close()


def test_a_model_target_has_no_base_side(chat_base):
    s = ChatSession(str(chat_base))
    assert not s.is_run
    assert "needs a run" in s.set_side_by_side(True) and not s.side_by_side


def test_a_running_run_is_refused_with_what_to_do(chat_base, tmp_path):
    import os
    import shutil

    from cockpit.run.status import write_status

    run = make_chat_run(tmp_path, chat_base)
    shutil.rmtree(run / "model")
    write_status(run, state="running", pid=os.getpid(), step=2, total_steps=4)
    with pytest.raises(CockpitError, match="still running.*llm-cockpit stop"):
        ChatSession(run).load()


def test_chat_plain_answers_lines_from_stdin(lora_run, fresh):
    """``printf 'hi\\n...' | llm-cockpit chat RUN`` (not a terminal: plain by itself)."""
    fresh.settings.max_new_tokens = 6
    expected = fresh.ask("What does wv.drizzle do?")
    out = subprocess.run([sys.executable, "-m", "cockpit.cli.main", "chat", str(lora_run), "--base", "--max-new-tokens",
                          "6"], input="What does wv.drizzle do?\n/max 3\n\nhello\n", capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    blocks = re.findall(r"^\[(.+?)\]\n(.*?)\n\n", out.stdout, flags=re.S | re.M)
    assert [label for label, _ in blocks] == ["fine-tuned", "base model"] * 2, out.stdout
    assert blocks[0][1].strip() == expected[TUNED] and blocks[1][1].strip() == expected[BASE]
    assert "loading… " in out.stderr and "at most 3 new tokens per answer" in out.stderr


def test_chat_cli_refusal_is_one_line_with_exit_1(lora_run, monkeypatch, capsys):
    import io

    from cockpit.cli.main import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
    assert main(["chat", str(lora_run), "--plain", "--free-memory", "0.001"]) == 1
    err = capsys.readouterr()
    last = err.err.strip().splitlines()[-1]
    assert last.startswith("llm-cockpit: the fine-tuned model (") and "needs about" in last and "-> close" in last
    assert "Traceback" not in err.err and err.out == ""
    assert main(["chat", "no-such-run-or-model"]) == 1
    assert "no-such-run-or-model" in capsys.readouterr().err
