"""wizard --plain asks the same questions and builds the same config as the full-screen wizard
(both are compared with :func:`tests.tui.conftest.expected_config`, the engine's config for
the same answers)."""

from __future__ import annotations

import io

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from cockpit.cli.plain_wizard import PlainWizard
from tests.tui.conftest import expected_config, make_engine


def test_plain_wizard_gives_the_same_config_as_the_full_screen_one(tmp_path, at_repo):
    runs = tmp_path / "runs"
    out = io.StringIO()
    with create_pipe_input() as keys:
        # model: the default (bundled); task: the third ("extend"); method: auto; batch and length:
        # defaults; data: the demo files; one change (epochs=2), then go on; do not start.
        keys.send_text("\r" "\x1b[B\x1b[B\r" "\r\r\r" "\r\r" "epochs=2\r\r" "n")
        wizard = PlainWizard(make_engine(runs), out=out, input=keys, output=DummyOutput())
        wizard.hardware()
        cfg, run_dir = wizard.run()
    text = out.getvalue()
    assert run_dir is None and cfg.epochs == 2
    assert "No NVIDIA GPU found" in text and "72 examples from 72 lines" in text
    assert "36 optimizer steps" in text and "The estimate decides: lora" in text
    assert "keep the specialist" in text
    assert cfg == expected_config(runs)


def test_plain_wizard_rejects_bad_settings_and_keeps_asking(tmp_path, at_repo):
    out = io.StringIO()
    with create_pipe_input() as keys:
        keys.send_text("\r\r" "\r\r\r" "\r\r" "lr=banana\r" "lr=5e-4\r\r" "n")
        cfg, _ = PlainWizard(make_engine(tmp_path / "runs"), out=out, input=keys, output=DummyOutput()).run()
    assert "config key 'lr' must be a number" in out.getvalue() and cfg.lr == 5e-4
