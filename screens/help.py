"""The help screen: the keys, and how to read a training run."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

HELP_TEXT = """\
# Keys

| key | what it does |
| --- | --- |
| `s` | stop the run: the trainer saves a checkpoint and ends as *stopped* (asks first) |
| `q` / `d` | leave this window; **training keeps going** (`llm-cockpit attach` comes back) |
| `c` | continue a stopped or failed run from its last checkpoint |
| `e` | export a finished run to Ollama / GGUF |
| `t` | talk to a finished or stopped run's model, beside its base model (`llm-cockpit chat`) |
| `r` | all runs |
| `1`-`4` | overview, samples, warnings, details |
| `tab` / `shift+tab` | move between panels; arrows scroll |
| `?` | this help; `escape` closes it |

# Reading the charts

A healthy run: the **loss** falls quickly at first, then slowly; the **eval loss** follows it
from a little above. The **gradient norm** stays in a band (drifting up slowly is normal);
the **learning rate** climbs during warmup, then decays. **tokens/s** should be flat.

| what you see | what it usually means | what to try |
| --- | --- | --- |
| loss becomes NaN | learning rate far too high, or broken examples | lr ten times lower; check the data |
| loss does not move | learning rate too low, or the answers are masked out | check the data, then raise lr |
| loss jumps now and then | a few odd examples | keep gradient clipping on; look at the data |
| eval loss rises while train loss falls | overfitting: it memorises | fewer epochs or early stopping |
| out of memory | batch or model too big for the card | smaller batch, more accumulation, checkpointing, QLoRA |
| slow, GPU often idle | the GPU waits for data | bigger batch, more data-loader workers |
| GPU above 85 °C | cooling | check fans and airflow |

A gradient norm above 100 is worth a look even when the loss seems fine.

# Samples

The trainer asks the base model a few fixed questions (the *base model* column: before
training, or with LoRA just after the first step, adapters switched off) and asks the
model in training again as it learns. When the answers start using what your data teaches,
the adapter is working; exact copies of training answers on *new* questions hint at
overfitting.

# After training

A finished (or stopped) run answers three questions:

| question | where | from the command line |
| --- | --- | --- |
| what does it say now? | `t` here or on the runs list: chat, beside the base model (and the exported GGUF) | `llm-cockpit chat RUN` |
| better than the last run? | `r`, `space` on each run, then `c`: curves overlaid, settings that differ | `llm-cockpit compare RUN RUN` |
| did it forget anything? | the base model's and the tuned model's score on a general task | `llm-cockpit eval RUN --regression` |

`llm-cockpit eval RUN --baseline` scores the held-out data for both models; `e` exports.

# Nothing is lost by closing this

The trainer is its own process: it writes everything to its run directory, and this
window only reads it. Close the terminal, drop the SSH connection, come back with
`llm-cockpit attach`: the whole history is replayed.
"""


class HelpScreen(ModalScreen[None]):
    """Keys and the training-health checklist; any of escape, q or ? closes it."""

    CSS_PATH = "modal.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            with VerticalScroll(classes="body"):
                yield Markdown(HELP_TEXT)
            yield Static("escape closes · arrows / page keys scroll", classes="hint")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
