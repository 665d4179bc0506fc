"""``llm-cockpit wizard --plain``: the wizard's questions, one line at a time.

For terminals where a full-screen app cannot run (a basic serial console, some CI or
web terminals). It asks what the full-screen wizard asks, through questionary, and
builds the config with the same :class:`~cockpit.app.wizard.WizardEngine`, so the
same answers give the same config and the same run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

import questionary

from cockpit.config import BUNDLED_MODEL, config_to_yaml, parse_overrides
from cockpit.errors import CockpitError
from cockpit.run.follow import fmt_age, fmt_bytes
from cockpit.planning.rules import estimate_lines, plain_text, rules_of_thumb
from cockpit.app.runs import list_runs
from cockpit.app.wizard import TASK_LABELS, DataChoice, MethodChoice, ModelChoice, WizardEngine, demo_data

OTHER = "__other__"


class Cancelled(Exception):
    """The person pressed Ctrl+C (questionary answers None)."""


class PlainWizard:
    """The questions in order; ``prompt_options`` go to questionary (tests pass pipe input)."""

    def __init__(self, engine: WizardEngine, out: TextIO = sys.stdout, now=None, **prompt_options: Any) -> None:
        self.engine = engine
        self.out = out
        self.options = prompt_options
        self.now = now

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ask(self, question) -> Any:
        answer = question.unsafe_ask() if self.options else question.ask()
        if answer is None:
            raise Cancelled
        return answer

    # -- the steps -----------------------------------------------------------------------
    def welcome(self) -> Path | None:
        """None: a new run; else the run to follow."""
        runs = list_runs(self.engine.explicit_root)
        if not runs:
            return None
        now = (self.now or time.time)()
        choices = [questionary.Choice("Start a new training run", value="new")]
        choices += [questionary.Choice(f"Follow {r.name} ({r.state}, {r.method}, {fmt_age(r.started, now)})",
                                       value=str(r.path)) for r in runs[:8]]
        answer = self.ask(questionary.select("What would you like to do?", choices=choices, **self.options))
        return None if answer == "new" else Path(answer)

    def hardware(self) -> None:
        self.say("\n== Hardware ==")
        for line in self.engine.hardware_lines():
            self.say(f"  {line}")

    def model(self) -> ModelChoice:
        self.say("\n== Model ==")
        choices = [questionary.Choice(f"{s.id}  ({s.params / 1e9:.2f}B, {s.kind}"
                                      + (", bundled, offline)" if s.id == BUNDLED_MODEL else ")"), value=s.id)
                   for s in self.engine.models()]
        choices.append(questionary.Choice("Another model: a hub id, a directory or a .gguf file", value=OTHER))
        while True:
            model = self.ask(questionary.select("Which model?", choices=choices, default=BUNDLED_MODEL,
                                                **self.options))
            if model == OTHER:
                model = self.ask(questionary.text("Model id or path:", **self.options)).strip()
            try:
                self.engine.spec(model)
                break
            except CockpitError as exc:
                self.say(f"  {exc.one_line()}")
        task = self.ask(questionary.select("What should the training do?", **self.options, choices=[
            questionary.Choice(label, value=key) for key, label in TASK_LABELS.items()]))
        advice = self.engine.model_advice(model, task)
        for reason in advice.reasons:
            self.say(f"  - {reason}")
        return ModelChoice(model=model, task=task)

    def method(self, model: str) -> MethodChoice:
        self.say("\n== Method ==")
        start = self.engine.default_method()
        method = self.ask(questionary.select("Training method:", default="auto", **self.options, choices=[
            "auto", "lora", "int8", "qlora", "full"]))
        batch = int(self.ask(questionary.text("Batch size:", default=str(start.batch_size),
                                              validate=_positive, **self.options)))
        seq = int(self.ask(questionary.text("Max tokens per example:", default=str(start.max_length),
                                            validate=_positive, **self.options)))
        choice = MethodChoice(method=start.method if method == "auto" else method, batch_size=batch,
                              grad_accum=start.grad_accum, max_length=seq, lora_r=start.lora_r,
                              grad_ckpt=start.grad_ckpt)
        plan = self.engine.plan(model, choice, auto=method == "auto")
        rec = plan.recommendation
        shown = rec.estimate if method == "auto" and rec.method else plan.asked
        self.say(f"  peak memory {fmt_bytes(shown.total_bytes)} of {fmt_bytes(rec.usable_bytes)} usable: "
                 + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in shown.breakdown.items()))
        for reason in rec.reasons:
            self.say(f"  - {reason}")
        for step in rec.ladder:
            self.say(f"  {'ok ' if step.fits else 'no '} {step.action}: {fmt_bytes(step.total_bytes)}")
        recommended = plan.recommended_choice(choice)
        if method == "auto" and recommended is not None:
            return recommended
        if not plan.fits and recommended is not None and self.ask(questionary.confirm(
                f"That does not fit. Use the recommendation ({rec.settings.describe()})?", default=True,
                **self.options)):
            return recommended
        return choice

    def data(self, model: str, max_length: int) -> DataChoice:
        self.say("\n== Data ==")
        demo_train, demo_eval = demo_data()
        while True:
            path = self.ask(questionary.text("Training data (a file, directory, glob or hf:org/name):", default=demo_train, **self.options)).strip()
            try:
                view = self.engine.data_view(path, model, max_length)
            except CockpitError as exc:
                self.say(f"  {exc.one_line()}")
                continue
            for line in view.report.to_lines(max_problems=10):
                self.say(f"  {line}")
            if view.report.ok:
                break
            self.say("  Fix these problems, or pick another file.")
        evaluation = self.ask(questionary.text("Held-out eval file (empty: hold out 10%):",
                                               default=demo_eval if path == demo_train else "",
                                               **self.options)).strip() or None
        stats = view.report.token_stats or {}
        return DataChoice(data=path, eval_data=evaluation, examples=view.train_rows, mean_tokens=stats.get("mean"))

    def review(self, model: ModelChoice, method: MethodChoice, data: DataChoice):
        self.say("\n== Review ==")
        overrides: dict[str, Any] = {}
        cfg = self.engine.build_config(model, method, data)
        while True:
            self.say(config_to_yaml(cfg).rstrip())
            self.say(plain_text(estimate_lines(cfg, self.engine.estimate_run(cfg, data.examples, data.mean_tokens))))
            self.say(plain_text(rules_of_thumb(cfg, self.engine.spec(cfg.model).params)))
            pairs = self.ask(questionary.text("Change a setting (key=value ..., empty to go on):",
                                              **self.options)).split()
            if not pairs:
                return cfg
            try:
                candidate = {**overrides, **parse_overrides(pairs)}
                cfg = self.engine.build_config(model, method, data, overrides=candidate)
            except CockpitError as exc:
                self.say(f"  {exc.one_line()}")
            else:
                overrides = candidate

    def run(self) -> tuple[Any, Path | None]:
        """All steps; returns the config and the started run (None when not started)."""
        model = self.model()
        method = self.method(model.model)
        data = self.data(model.model, method.max_length)
        cfg = self.review(model, method, data)
        if not self.ask(questionary.confirm("Start the training now?", default=True, **self.options)):
            return cfg, None
        run_dir = self.engine.start(cfg)
        self.say(f"\nStarted {run_dir}; it trains in the background.")
        return cfg, run_dir


def _positive(text: str) -> bool | str:
    return True if text.strip().isdigit() and int(text) > 0 else "a whole number above 0"


def run_plain_wizard(output_dir: str | Path | None = None) -> int:
    """The ``wizard --plain`` command: ask, start, and offer to follow the run here."""
    from cockpit.cli.console import attach_plain

    wizard = PlainWizard(WizardEngine(output_dir))
    try:
        existing = wizard.welcome()
        if existing is not None:
            return attach_plain(existing)
        wizard.hardware()
        _, run_dir = wizard.run()
        if run_dir is None:
            return 0
        if wizard.ask(questionary.confirm("Follow it here? (Ctrl+C detaches, training goes on)", default=True)):
            return attach_plain(run_dir)
        wizard.say(f"Follow it later with: llm-cockpit attach {run_dir.name}")
    except Cancelled:
        wizard.say("Cancelled; nothing was started.")
        return 1
    return 0
