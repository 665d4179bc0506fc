"""Ollama Modelfiles: the chat template in Ollama's Go syntax, stop tokens, system prompt.

A GGUF answers sensibly in Ollama only when the prompt Ollama builds is the one the
model was trained on. We recognise the model's own (Jinja) chat template by the special
tokens it uses and write the same layout as a Go template over ``.Messages``:

* ChatML (SmolLM2, Qwen): ``<|im_start|>role\\n...<|im_end|>``
* Llama-3: ``<|start_header_id|>role<|end_header_id|>\\n\\n...<|eot_id|>``
* Mistral: ``[INST] ...[/INST] answer</s>`` (system text goes into the last user turn)
* Gemma: ``<start_of_turn>user\\n...<end_of_turn>`` (system text opens the first user turn)

Any other template gets no TEMPLATE line (Ollama then guesses from the template stored in
the GGUF) and an honest warning. Values are quoted the way Ollama's Modelfile parser reads
them: ``"..."`` on one line, ``\"\"\"...\"\"\"`` when they hold quotes or newlines; the parser
knows no backslash escapes, so a value containing ``\"\"\"`` cannot be written at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cockpit.errors import CockpitError

FAMILIES = ("chatml", "llama3", "mistral", "gemma")

# The special tokens that identify each family in a Jinja chat template.
_MARKERS = {
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "llama3": ("<|start_header_id|>", "<|eot_id|>"),
    "gemma": ("<start_of_turn>", "<end_of_turn>"),
    "mistral": ("[INST]", "[/INST]"),
}

# Tokens that end an assistant turn (or begin a new one) in each family.
END_OF_TURN = {
    "chatml": ["<|im_end|>"],
    "llama3": ["<|eot_id|>", "<|eom_id|>"],
    "gemma": ["<end_of_turn>"],
    "mistral": ["</s>", "[INST]"],
}

_CHATML = """\
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""

_LLAMA3 = """\
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}"""

_MISTRAL = """\
{{- $system := "" }}
{{- range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ end }}{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}[INST] {{ if and $last $system }}{{ $system }}

{{ end }}{{ .Content }}@@SPACE@@[/INST]
{{- else if eq .Role "assistant" }} {{ .Content }}</s>
{{- end }}
{{- end }}"""

_GEMMA = """\
{{- $system := "" }}
{{- range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ end }}{{ end }}
{{- $first := true }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if and $first $system }}{{ $system }}

{{ end }}{{ .Content }}<end_of_turn>
{{ $first = false }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- if and $last (ne .Role "assistant") }}<start_of_turn>model
{{ end }}
{{- end }}"""

# The plain format used when a model has no chat template: "prompt\n" then the answer.
_PLAIN = """{{ if .System }}{{ .System }}

{{ end }}{{ .Prompt }}
"""


def detect_family(chat_template: str | None) -> str | None:
    """The template family of a Jinja chat template, or None when it is not one we know."""
    if not chat_template:
        return None
    for family in ("chatml", "llama3", "gemma", "mistral"):
        if all(marker in chat_template for marker in _MARKERS[family]):
            return family
    return None


def go_template(family: str, chat_template: str = "") -> str:
    """The Ollama (Go text/template) version of a family's chat layout."""
    if family == "chatml":
        return _CHATML
    if family == "llama3":
        return _LLAMA3
    if family == "gemma":
        return _GEMMA
    if family == "mistral":
        # Mistral v1 templates close with " [/INST]", later ones with "[/INST]".
        space = " " if " [/INST]" in chat_template else ""
        return _MISTRAL.replace("@@SPACE@@", space)
    if family == "plain":
        return _PLAIN
    raise ValueError(f"unknown template family {family!r}")


def stop_tokens(family: str | None, eos_tokens: list[str], vocab: set[str] | None = None) -> list[str]:
    """Every token that should end generation: the family's end-of-turn tokens present in
    the vocabulary, then the model's EOS tokens."""
    stops = [t for t in END_OF_TURN.get(family or "", []) if vocab is None or t in vocab]
    for tok in eos_tokens:
        if tok and tok not in stops:
            stops.append(tok)
    return stops


def quote(value: str, what: str = "value") -> str:
    """Quote a Modelfile value so Ollama's parser reads back exactly ``value``."""
    if '"""' in value:
        raise CockpitError(f'the {what} contains """, which a Modelfile cannot hold',
                           'remove the triple quotes from it and export again')
    if "\n" in value or "\r" in value or '"' in value:
        return f'"""{value}"""'
    return f'"{value}"'


@dataclass
class ModelfileSpec:
    """A Modelfile and its parts (the HTTP create call sends the parts, not the text)."""

    text: str
    gguf: Path
    family: str | None
    template: str | None
    stops: list[str]
    system: str | None
    warnings: list[str] = field(default_factory=list)

    def parameters(self) -> dict:
        """The PARAMETER lines as the ``parameters`` object of Ollama's create API."""
        return {"stop": list(self.stops)} if self.stops else {}


def build_modelfile(gguf: Path, chat_template: str | None, eos_tokens: list[str], *,
                    vocab: set[str] | None = None, system_prompt: str | None = None,
                    default_system: str | None = None, title: str | None = None) -> ModelfileSpec:
    """Write the Modelfile for ``gguf``.

    ``system_prompt`` is the run's configured one; ``default_system`` is what the model's
    own template inserts when a conversation has no system message (SmolLM2 and Qwen do),
    kept so Ollama builds the very prompt the model saw in training.
    """
    warnings: list[str] = []
    family = detect_family(chat_template)
    if family is not None:
        template: str | None = go_template(family, chat_template or "")
    elif not chat_template:
        family = "plain"
        template = go_template(family)
        warnings.append("the model has no chat template: the Modelfile uses the plain 'prompt, newline, answer' "
                        "layout; check the answers with: ollama run NAME")
    else:
        template = None
        warnings.append("the chat template is not ChatML, Llama-3, Mistral or Gemma: no TEMPLATE is written and "
                        "Ollama will guess one from the GGUF; check the answers before sharing the model")
    stops = stop_tokens(family, eos_tokens, vocab)
    if not stops:
        warnings.append("no end-of-turn or EOS token found: Ollama may not stop generating")
    system = system_prompt or default_system or None
    lines = [f"# Modelfile written by llm-cockpit{' for ' + title if title else ''}",
             "# Build it with: ollama create NAME -f Modelfile",
             f"FROM {quote(str(gguf), 'GGUF path')}"]
    if template is not None:
        lines.append(f"TEMPLATE {quote(template, 'chat template')}")
    for stop in stops:
        lines.append(f"PARAMETER stop {quote(stop, 'stop token')}")
    if system:
        lines.append(f"SYSTEM {quote(system, 'system prompt')}")
    return ModelfileSpec(text="\n".join(lines) + "\n", gguf=gguf, family=family,
                         template=template, stops=stops, system=system, warnings=warnings)


def default_system_from(rendered: str, family: str | None) -> str | None:
    """The system text a chat template inserts on its own, found in the rendering of a
    conversation that had only a user message (``rendered``)."""
    openers = {"chatml": ("<|im_start|>system\n", "<|im_end|>"),
               "llama3": ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>")}
    if family not in openers:
        return None
    start, end = openers[family]
    i = rendered.find(start)
    if i < 0:
        return None
    j = rendered.find(end, i + len(start))
    return rendered[i + len(start):j] if j > 0 else None
