"""Talk to a trained model, beside its base model and its exported GGUF.

``ChatSession(target)`` names what to talk to: a run (a name, a path or ``latest``, found
through :mod:`cockpit.run.registry` from any directory) or a model (a hub id, a
directory, a ``.gguf``, as ``eval`` accepts). :meth:`ChatSession.load` loads it (say what
it is doing through ``progress``; a model too big for the free memory is refused before any
weight is read, see :mod:`cockpit.chat.fit`), and :meth:`ChatSession.send` answers a
message on every active side, as a stream of :class:`ChatChunk` (one side after the
other: with LoRA both share one copy of the weights).

The sides of a run (:attr:`ChatSession.sides`):

* ``tuned``: the run's model (``model/``; the newest checkpoint of a stopped run);
* ``base`` (side by side): the base model. With a LoRA adapter it is the same weights with
  the adapters disabled (:func:`cockpit.models.generate.adapters_off`); a full fine-tune loads the
  base as a second model, checked against the memory the first one left;
* ``gguf`` (side by side, when ``RUN/export/`` holds a ``.gguf``): the export in llama.cpp.
  Without llama-cpp-python the side says so in one line.

Each side keeps its own history; the run's system prompt (``config_used.yaml``) is used
unless the settings say otherwise. :meth:`ChatSession.save` appends a side's conversation
to a JSONL file as ``{"messages": [...]}``, the format the trainer reads.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.chat.fit import MemoryBudget, gguf_estimate, hf_estimate, too_big_advice
from cockpit.chat.loading import llama_cpp_problem, load_weights, pick_device
from cockpit.chat.sides import GGUFAnswerer, HFAnswerer, Sampling
from cockpit.chat.target import ChatTarget, exported_gguf, resolve_target, run_weights
from cockpit.errors import CockpitError, exception_line
from cockpit.run.words import fmt_bytes

log = logging.getLogger(__name__)

TUNED, BASE, GGUF = "tuned", "base", "gguf"
SAVE_FILE = "chat_examples.jsonl"
DEFAULT_CONTEXT = 2048
Progress = Callable[[str, str], None]
"""``progress(phase, message)``: told before each slow step of loading."""


@dataclass
class ChatSettings(Sampling):
    """Sampling plus the system prompt (None: none). Temperature 0 is greedy decoding."""

    system_prompt: str | None = None

    def describe(self) -> str:
        """``greedy · max 256 tokens`` or ``temperature 0.7 · top-p 0.9 · max 256 tokens``."""
        how = "greedy" if self.temperature <= 0 else f"temperature {self.temperature:g} · top-p {self.top_p:g}"
        return f"{how} · max {self.max_new_tokens} tokens" + (" · system prompt" if self.system_prompt else "")

    def set(self, name: str, value: str) -> str:
        """Change one setting from text (``temp``, ``top_p``, ``max``); returns what it is now.
        Raises :class:`CockpitError` naming the setting and what is allowed."""
        try:
            if name in ("temp", "temperature"):
                number = float(value)
                if not 0 <= number <= 5:
                    raise ValueError
                self.temperature = number
                return f"temperature {number:g}" + (" (greedy)" if number == 0 else "")
            if name in ("top_p", "top-p", "topp"):
                number = float(value)
                if not 0 < number <= 1:
                    raise ValueError
                self.top_p = number
                return f"top-p {number:g}" + (" (used when the temperature is above 0)" if self.temperature <= 0
                                              else "")
            if name in ("max", "max_new_tokens", "max-new-tokens"):
                count = int(value)
                if not 1 <= count <= 8192:
                    raise ValueError
                self.max_new_tokens = count
                return f"at most {count} new tokens per answer"
        except ValueError:
            allowed = {"temp": "a number from 0 (greedy) to 5", "temperature": "a number from 0 (greedy) to 5",
                       "max": "a whole number from 1 to 8192"}.get(name, "a number above 0, at most 1")
            raise CockpitError(f"{name} {value!r} is not allowed", f"give {allowed}") from None
        raise CockpitError(f"unknown setting {name!r}", "settings: temp, top_p, max")


@dataclass
class ChatChunk:
    """A piece of one side's answer. ``done`` ends the side's answer (``answer``: all of it);
    ``note`` is a one-line remark for that side (unavailable, turns left out, stopped);
    ``error`` a failure of that side, in one line."""

    side: str
    text: str = ""
    done: bool = False
    answer: str | None = None
    note: str | None = None
    error: str | None = None


@dataclass
class ChatSide:
    """One column of the chat: who answers, and the conversation it has had."""

    key: str
    label: str
    answerer: Any = None
    note: str | None = None  # why it cannot answer (no answerer), or what it is
    history: list[dict] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.answerer is not None


class ChatSession:
    """A conversation with a run's model (and its base and GGUF side by side), or with a model.

    ``free_bytes`` fixes the free memory the size checks compare with (tests, "what if");
    ``device``: ``auto`` (CUDA when torch sees a GPU), ``cpu`` or ``cuda``.
    """

    def __init__(self, target: str | os.PathLike[str] | ChatTarget | None = None, *,
                 output_dir: str | os.PathLike[str] | None = None, side_by_side: bool = False,
                 with_gguf: bool = True, settings: ChatSettings | None = None, free_bytes: int | None = None,
                 device: str = "auto", context: int = DEFAULT_CONTEXT) -> None:
        self.target = target if isinstance(target, ChatTarget) else resolve_target(
            str(target) if target is not None else None, output_dir)
        self.run_dir = self.target.run_dir
        self.cfg = None
        if self.run_dir is not None:
            from cockpit.run_config import load_run_config

            self.cfg = load_run_config(self.run_dir)
        self.settings = settings or ChatSettings(system_prompt=self.cfg.system_prompt if self.cfg else None)
        self.side_by_side = side_by_side
        self.with_gguf = with_gguf
        self.budget = MemoryBudget(free_bytes)
        self.device_choice = device
        self.device = "cpu"
        self.context = context
        self.loaded = False
        self.save_path: Path | None = None  # where /save writes without a FILE (default_save_path)
        self.notes: list[str] = []  # one line each, said once after loading
        self._sides: dict[str, ChatSide] = {}
        self._is_adapter = False
        self._cancel = threading.Event()
        self._lock = threading.RLock()

    # -- what there is ---------------------------------------------------------------
    @property
    def is_run(self) -> bool:
        return self.run_dir is not None

    @property
    def title(self) -> str:
        if self.cfg is not None:
            return f"{self.target.label} ({self.cfg.model}, {self.cfg.method})"
        return self.target.label

    @property
    def sides(self) -> list[ChatSide]:
        """The sides that answer now: the model alone, or all of them side by side."""
        keys = [TUNED] + ([BASE, GGUF] if self.side_by_side else [])
        return [self._sides[k] for k in keys if k in self._sides]

    def side(self, key: str) -> ChatSide:
        if key not in self._sides:
            known = ", ".join(self._sides) or "none loaded yet"
            raise CockpitError(f"no side {key!r} in this chat", f"sides: {known}")
        return self._sides[key]

    def default_save_path(self) -> Path:
        """Where a save without a file name goes: ``save_path``, else ``RUN/chat_examples.jsonl``
        (``./chat_examples.jsonl`` for a model)."""
        if self.save_path is not None:
            return self.save_path
        return (self.run_dir / SAVE_FILE) if self.run_dir is not None else Path(SAVE_FILE).resolve()

    # -- loading ---------------------------------------------------------------------
    def load(self, progress: Progress | None = None) -> None:
        """Load the model (and, side by side, its base and GGUF). Raises :class:`CockpitError`
        when the model does not fit the free memory (before loading it) or cannot be loaded."""
        say = progress or (lambda phase, message: None)
        with self._lock:
            if not self.loaded:
                self.device = pick_device(self.device_choice, say)
                if self.run_dir is not None:
                    self._load_run(say)
                else:
                    self._load_model(say)
                self.loaded = True
            if self.side_by_side:
                self._load_companions(say)
        say("ready", "ready")

    def set_side_by_side(self, on: bool, progress: Progress | None = None) -> str:
        """Turn side by side on or off (loading the base and GGUF sides the first time);
        returns a one-line account."""
        if on and not self.is_run:
            self.side_by_side = False
            return "side by side needs a run: a model on its own has no base model to compare with"
        self.side_by_side = on
        if not on:
            return "only the fine-tuned model answers now"
        self.load(progress)
        shown = [s.label + ("" if s.available else " (unavailable)") for s in self.sides]
        return "side by side: " + ", ".join(shown) + ("; new sides start a fresh conversation" if any(
            not s.history for s in self.sides[1:]) and self._sides[TUNED].history else "")

    def _load_run(self, say: Progress) -> None:
        from cockpit.export.source import weight_files

        say("reading", f"reading the run {self.run_dir.name}")
        weights_dir, self._is_adapter, note = run_weights(self.run_dir)
        if note:
            self.notes.append(note)
        label = "fine-tuned"
        if self._is_adapter:
            adapter_bytes = sum(p.stat().st_size for p in weight_files(weights_dir))
            model, tok = self._load_hf(self.cfg.model, f"the fine-tuned model ({self.cfg.model} + LoRA adapter)",
                                       say, adapter=weights_dir, extra=adapter_bytes)
            self._sides[TUNED] = ChatSide(TUNED, label, HFAnswerer(model, tok, context=self._context_of(model)))
            # one copy of the weights: the base answers with the adapters disabled
            self._sides[BASE] = ChatSide(BASE, "base model", HFAnswerer(model, tok, adapters=False,
                                                                        context=self._context_of(model)),
                                         note="the same weights, adapters disabled")
        else:
            model, tok = self._load_hf(str(weights_dir), "the fine-tuned model", say, tokenizer_fallback=self.cfg.model)
            self._sides[TUNED] = ChatSide(TUNED, label, HFAnswerer(model, tok, context=self._context_of(model)))

    def _load_model(self, say: Progress) -> None:
        spec = self.target.spec
        if spec.lower().endswith(".gguf") and Path(spec).expanduser().is_file() and llama_cpp_problem() is None:
            self._sides[TUNED] = self._gguf_side(TUNED, Path(spec).expanduser(), say, main=True)
            return
        model, tok = self._load_hf(spec, f"the model {spec}", say)
        self._sides[TUNED] = ChatSide(TUNED, Path(spec).name or spec, HFAnswerer(model, tok,
                                                                               context=self._context_of(model)))

    def _load_companions(self, say: Progress) -> None:
        if BASE not in self._sides:  # a full fine-tune: the base is a second model
            try:
                model, tok = self._load_hf(self.cfg.model, f"the base model {self.cfg.model}", say,
                                           advice="close other programs that hold memory, or chat without the "
                                                  "base model (a full fine-tune needs a second copy for it)")
            except CockpitError as exc:
                self._sides[BASE] = ChatSide(BASE, "base model", note=exc.one_line())
            else:
                self._sides[BASE] = ChatSide(BASE, "base model", HFAnswerer(model, tok,
                                                                             context=self._context_of(model)))
        if GGUF not in self._sides and self.with_gguf:
            gguf = exported_gguf(self.run_dir)
            if gguf is None:
                self._sides[GGUF] = ChatSide(GGUF, "GGUF", note=f"not exported yet (llm-cockpit export "
                                                                 f"{self.run_dir.name} --to gguf)")
            else:
                problem = llama_cpp_problem()
                if problem is not None:
                    self._sides[GGUF] = ChatSide(GGUF, f"GGUF {gguf.name}", note=problem)
                else:
                    try:
                        self._sides[GGUF] = self._gguf_side(GGUF, gguf, say)
                    except CockpitError as exc:
                        self._sides[GGUF] = ChatSide(GGUF, f"GGUF {gguf.name}", note=exc.one_line())

    def _gguf_side(self, key: str, path: Path, say: Progress, main: bool = False) -> ChatSide:
        est = gguf_estimate(path, context=self.context)
        say("checking_memory", f"checking memory: {est.what} needs about {fmt_bytes(est.total)}")
        self.budget.admit(est, "cpu", too_big_advice("cpu", run=False) if main else
                          "close other programs, or chat without the GGUF side (--no-gguf)")
        say("loading_gguf", f"loading {path.name} in llama.cpp ({fmt_bytes(path.stat().st_size)})")
        try:
            answerer = GGUFAnswerer(path, context=self.context)
        except Exception as exc:  # noqa: BLE001 - llama.cpp raises ValueError for a file it cannot read
            raise CockpitError(f"llama.cpp could not load {path.name}: {exception_line(exc, 200)}",
                               "re-export the run (llm-cockpit export RUN --to gguf)") from exc
        return ChatSide(key, f"GGUF {path.name}" if not main else path.name, answerer, note="llama.cpp")

    def _load_hf(self, spec: str, what: str, say: Progress, *, adapter: Path | None = None, extra: int = 0,
                 tokenizer_fallback: str | None = None, advice: str | None = None):
        """Check the size (cheaply first, exactly once the files are here), then load."""
        from cockpit.models.catalog import resolve_spec
        from cockpit.models.sources import locate_model, resolve_model

        advice = advice or too_big_advice(self.device, run=self.is_run)
        say("checking_memory", f"checking whether {what} fits")
        located = _quiet(lambda: locate_model(spec))
        try:
            arch = resolve_spec(str(located) if located and (located / "config.json").is_file() else spec,
                                network=False)
        except CockpitError:
            arch = None  # a hub model that is not here yet: checked once it is
        if arch is not None:
            est = hf_estimate(what, located if located and located.is_dir() else None, arch,
                              context=self.context, device=self.device, extra_weights=extra)
            self.budget.check(est, self.device, advice)
        path = resolve_model(spec, report=say).path
        arch = resolve_spec(str(path), network=False)
        est = hf_estimate(what, path, arch, context=self.context, device=self.device, extra_weights=extra)
        say("checking_memory", f"{what} needs about {fmt_bytes(est.total)}; "
                               f"{fmt_bytes(self.budget.free(self.device))} free")
        self.budget.admit(est, self.device, advice)
        say("loading_weights", f"loading the weights of {Path(str(spec)).name or spec} "
                               f"({fmt_bytes(est.weights - extra)}) on the {self.device.upper()}")
        return load_weights(path, self.device, adapter, say, tokenizer_fallback)

    def _context_of(self, model: Any) -> int:
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        return min(self.context, int(limit)) if isinstance(limit, int) and limit > 0 else self.context

    # -- talking ---------------------------------------------------------------------
    def messages_for(self, side: ChatSide, message: str) -> list[dict]:
        """The conversation a side answers: the system prompt, its own history, the new message."""
        head = [{"role": "system", "content": self.settings.system_prompt}] if self.settings.system_prompt else []
        return head + side.history + [{"role": "user", "content": message}]

    def send(self, message: str) -> Iterator[ChatChunk]:
        """Answer ``message`` on every active side, one side after the other, streamed."""
        if not self.loaded:
            raise CockpitError("the chat has no model loaded yet", "call load() first")
        message = message.strip()
        if not message:
            return
        with self._lock:
            self._cancel.clear()
            for side in self.sides:
                yield from self._answer(side, message)

    def _answer(self, side: ChatSide, message: str) -> Iterator[ChatChunk]:
        if not side.available:
            yield ChatChunk(side.key, done=True, note=side.note or "unavailable")
            return
        parts: list[str] = []
        try:
            for text in side.answerer.stream(self.messages_for(side, message), self.settings, self._cancel):
                parts.append(text)
                yield ChatChunk(side.key, text)
        except Exception as exc:  # noqa: BLE001 - one side failing must not end the chat
            from cockpit.training.oom import is_oom

            line = exception_line(exc, 200)
            advice = "lower /max or /reset the conversation" if is_oom(exc) else "see --debug for details"
            log.debug("side %s failed", side.key, exc_info=True)
            yield ChatChunk(side.key, done=True, error=f"{side.label} failed: {line} -> {advice}")
            return
        answer = "".join(parts).strip()
        side.history += [{"role": "user", "content": message}, {"role": "assistant", "content": answer}]
        notes = []
        if getattr(side.answerer, "trimmed_turns", 0):
            notes.append(f"the oldest {side.answerer.trimmed_turns} turn(s) no longer fit the context; left out")
        if self._cancel.is_set():
            notes.append("stopped")
        yield ChatChunk(side.key, done=True, answer=answer, note="; ".join(notes) or None)

    def ask(self, message: str) -> dict[str, str]:
        """Every active side's whole answer (no streaming): ``{side: answer}``."""
        out: dict[str, str] = {}
        for chunk in self.send(message):
            if chunk.done:
                out[chunk.side] = chunk.answer if chunk.answer is not None else ""
        return out

    def cancel(self) -> None:
        """Stop the answer being generated (the part said so far stays in the history)."""
        self._cancel.set()

    def reset(self) -> None:
        """Forget every side's conversation."""
        for side in self._sides.values():
            side.history.clear()

    def history(self, side: str = TUNED) -> list[dict]:
        return list(self.side(side).history)

    def save(self, path: str | os.PathLike[str] | None = None, side: str = TUNED) -> tuple[Path, int]:
        """Append ``side``'s conversation (with the system prompt) to ``path`` as one
        ``{"messages": [...]}`` line; returns the file and how many turns were written."""
        turns = self.history(side)
        if not turns:
            raise CockpitError(f"the {self.side(side).label} side has said nothing yet", "send a message first")
        messages = ([{"role": "system", "content": self.settings.system_prompt}] if self.settings.system_prompt
                    else []) + turns
        target = Path(path).expanduser() if path else self.default_save_path()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise CockpitError(f"cannot write {target}: {exc.strerror or exc}",
                               "give another file: /save FILE") from exc
        return target, len(turns) // 2

    def close(self) -> None:
        """Free the models (llama.cpp's own handle included)."""
        for side in self._sides.values():
            if side.answerer is not None and hasattr(side.answerer, "close"):
                side.answerer.close()
        self._sides.clear()
        self.loaded = False


def _quiet(fn):
    try:
        return fn()
    except CockpitError:
        return None
