"""The wizard's order: each step is a screen with a typed answer; this chains them.

Welcome -> Hardware -> Model -> Method -> Data -> Review -> Start -> the dashboard.
A step's answer is stored and the next step pushed; ``None`` (Back) pushes the step
before it again, filled with the answers given so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.config import TrainConfig
from cockpit.app.wizard import DataChoice, MethodChoice, ModelChoice


@dataclass
class WizardAnswers:
    """Everything answered so far."""

    hardware: Any = None
    model: ModelChoice | None = None
    method: MethodChoice | None = None
    data: DataChoice | None = None
    mean_tokens: float | None = None
    overrides: dict | None = None
    config: TrainConfig | None = None
    run_dir: Path | None = None


class WizardFlow:
    """Drives the steps on ``app`` (a :class:`screens.app.CockpitApp`)."""

    def __init__(self, app, engine=None) -> None:
        self.app = app
        self.engine = engine or app.engine
        self.answers = WizardAnswers()
        self.index = 0
        self.current = None

    def begin(self, index: int = 0) -> None:
        self.show(index)

    def show(self, index: int) -> None:
        self.index = index
        self.current = self._screen(index)
        self.app.push_screen(self.current, lambda answer: self._answered(index, answer))

    def _screen(self, index: int):
        a, engine = self.answers, self.engine
        if index == 0:
            from screens.welcome import WelcomeScreen

            return WelcomeScreen(self.app.output_dir)
        if index == 1:
            from screens.hardware import HardwareScreen

            return HardwareScreen(engine)
        if index == 2:
            from screens.model import ModelScreen

            return ModelScreen(engine, a.model)
        if index == 3:
            from screens.method import MethodScreen

            return MethodScreen(engine, a.model.model, a.method)
        if index == 4:
            from screens.data import DataScreen

            return DataScreen(engine, a.model.model, a.method.max_length, a.data)
        if index == 5:
            from screens.review import ReviewScreen

            return ReviewScreen(engine, a.model, a.method, a.data, a.mean_tokens, a.overrides)
        from screens.start import StartScreen

        return StartScreen(engine, a.config)

    def _answered(self, index: int, answer: Any) -> None:
        if answer is None:  # Back
            if index == 0:
                if len(self.app.screen_stack) <= 1:
                    self.app.exit()
                return  # started from another screen: it is still there
            self.show(index - 1)
            return
        if index == 0:
            if answer.action == "open":
                self.app.open_run(answer.run_dir)
            elif answer.action == "runs":
                self.app.open_runs()
            else:
                self.show(1)
            return
        self._store(index, answer)
        if index == 6:
            self.answers.run_dir = answer
            self.app.open_run(answer)
            return
        self.show(index + 1)

    def _store(self, index: int, answer: Any) -> None:
        a = self.answers
        if index == 1:
            a.hardware = answer
        elif index == 2:
            if a.model is not None and a.model.model != answer.model:
                a.method = None  # a different model needs a new plan
            a.model = answer
        elif index == 3:
            a.method = answer
            if answer.model:  # the advisor's way to fit was a smaller model
                a.model = ModelChoice(model=answer.model, task=a.model.task)
        elif index == 4:
            a.data = answer
            a.mean_tokens = answer.mean_tokens
        elif index == 5:
            a.config = answer
            a.overrides = dict(getattr(self.current, "overrides", {}) or {})
