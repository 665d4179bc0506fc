"""Modelfiles: each template family against its expected text, quoting as Ollama parses it,
and (where a Go toolchain exists) the Go templates executed by Go's text/template next to
the original Jinja templates rendered by jinja2, on the same conversations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cockpit.errors import CockpitError
from cockpit.export.modelfile import build_modelfile, default_system_from, detect_family, go_template, quote

# Chat templates in the layout of each family's published models (written for these tests).
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
          "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
MISTRAL = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] %}"
           "{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}{% endif %}"
           "{% for message in loop_messages %}{% if message['role'] == 'user' %}"
           "{% if loop.last and system_message is defined %}{{ '[INST] ' + system_message + '\n\n' + message['content'] + '[/INST]' }}"
           "{% else %}{{ '[INST] ' + message['content'] + '[/INST]' }}{% endif %}"
           "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}")
GEMMA = ("{{ bos_token }}{% set first_prefix = '' %}{% if messages[0]['role'] == 'system' %}"
         "{% set first_prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}"
         "{% else %}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}"
         "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
         "{{ '<start_of_turn>' + role + '\n' + (first_prefix if loop.first else '') + message['content'] | trim"
         " + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")
TEMPLATES = {"chatml": CHATML, "llama3": LLAMA3, "mistral": MISTRAL, "gemma": GEMMA}
BOS = {"chatml": "", "llama3": "<|begin_of_text|>", "mistral": "<s>", "gemma": "<bos>"}
EOS = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "mistral": "</s>", "gemma": "<eos>"}

GGUF = Path("/models/my run/dsl-f16.gguf")

EXPECTED = {
    "chatml": '''\
# Modelfile written by llm-cockpit for dsl
# Build it with: ollama create NAME -f Modelfile
FROM "/models/my run/dsl-f16.gguf"
TEMPLATE """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""
PARAMETER stop "<|im_end|>"
SYSTEM "You are a helpful assistant."
''',
    "llama3": '''\
# Modelfile written by llm-cockpit for dsl
# Build it with: ollama create NAME -f Modelfile
FROM "/models/my run/dsl-f16.gguf"
TEMPLATE """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}"""
PARAMETER stop "<|eot_id|>"
PARAMETER stop "<|eom_id|>"
PARAMETER stop "<|end_of_text|>"
SYSTEM """Answer in "Wivel" only."""
''',
    "mistral": '''\
# Modelfile written by llm-cockpit for dsl
# Build it with: ollama create NAME -f Modelfile
FROM "/models/my run/dsl-f16.gguf"
TEMPLATE """{{- $system := "" }}
{{- range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ end }}{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}[INST] {{ if and $last $system }}{{ $system }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }} {{ .Content }}</s>
{{- end }}
{{- end }}"""
PARAMETER stop "</s>"
PARAMETER stop "[INST]"
''',
    "gemma": '''\
# Modelfile written by llm-cockpit for dsl
# Build it with: ollama create NAME -f Modelfile
FROM "/models/my run/dsl-f16.gguf"
TEMPLATE """{{- $system := "" }}
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
PARAMETER stop "<end_of_turn>"
PARAMETER stop "<eos>"
SYSTEM "Be brief."
''',
}
ARGS = {
    "chatml": {"eos_tokens": ["<|im_end|>"], "default_system": "You are a helpful assistant."},
    "llama3": {"eos_tokens": ["<|end_of_text|>"], "system_prompt": 'Answer in "Wivel" only.'},
    "mistral": {"eos_tokens": ["</s>"]},
    "gemma": {"eos_tokens": ["<eos>"], "system_prompt": "Be brief."},
}


@pytest.mark.parametrize("family", ["chatml", "llama3", "mistral", "gemma"])
def test_modelfile_for_each_family_matches_expected_text(family):
    assert detect_family(TEMPLATES[family]) == family
    spec = build_modelfile(GGUF, TEMPLATES[family], title="dsl", **ARGS[family])
    assert spec.text == EXPECTED[family]
    assert spec.family == family and not spec.warnings


def test_unknown_template_gets_no_template_and_an_honest_warning():
    spec = build_modelfile(GGUF, "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}",
                           ["</s>"])
    assert "TEMPLATE" not in spec.text and spec.family is None
    assert any("not ChatML, Llama-3, Mistral or Gemma" in w for w in spec.warnings)
    assert 'PARAMETER stop "</s>"' in spec.text


def test_no_template_uses_the_plain_training_layout():
    spec = build_modelfile(GGUF, None, ["</s>"])
    assert spec.family == "plain" and 'TEMPLATE """{{ if .System }}' in spec.text
    assert any("no chat template" in w for w in spec.warnings)


def test_stop_tokens_missing_from_vocab_are_left_out():
    spec = build_modelfile(GGUF, LLAMA3, ["<|eot_id|>"], vocab={"<|eot_id|>", "hello"})
    assert spec.stops == ["<|eot_id|>"]


def test_default_system_is_found_in_a_rendering():
    rendered = "<|im_start|>system\nYou are SmolLM.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n"
    assert default_system_from(rendered, "chatml") == "You are SmolLM."
    assert default_system_from("<|im_start|>user\nx<|im_end|>\n", "chatml") is None
    assert default_system_from(rendered, "gemma") is None


def _ollama_unquote(raw: str) -> str:
    """Ollama's Modelfile parser's unquote (parser.go): triple quotes, then double, no escapes."""
    if raw.startswith('"""'):
        assert raw.endswith('"""') and len(raw) >= 6
        return raw[3:-3]
    if raw.startswith('"'):
        assert raw.endswith('"') and len(raw) >= 2
        return raw[1:-1]
    return raw


@pytest.mark.parametrize("value", ["/plain/path.gguf", "/with space/and'quote.gguf", '/a "quoted" dir/m.gguf',
                                   'ends with "', '"starts', "two\nlines", ""])
def test_quote_round_trips_through_ollamas_unquote(value):
    assert _ollama_unquote(quote(value)) == value


def test_quote_refuses_what_a_modelfile_cannot_hold():
    with pytest.raises(CockpitError, match='contains """'):
        quote('say """hi"""', "system prompt")


# ---- the Go templates executed by Go itself (the engine Ollama uses), when Go is here ----

GO_MAIN = r"""
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }
type Values struct {
	Messages []Message
	System   string
}

func main() {
	var in struct {
		Template string
		Cases    [][]Message
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("t").Parse(in.Template))
	out := []string{}
	for _, msgs := range in.Cases {
		var b stringsBuilder
		if err := tmpl.Execute(&b, Values{Messages: msgs}); err != nil {
			panic(err)
		}
		out = append(out, b.s)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

type stringsBuilder struct{ s string }

func (b *stringsBuilder) Write(p []byte) (int, error) { b.s += string(p); return len(p), nil }
"""

CONVERSATIONS = [
    [("user", "What does wv.drizzle do?")],
    [("system", "Answer briefly."), ("user", "Hi")],
    [("user", "Hi"), ("assistant", "Hello."), ("user", "Write wv.drizzle for b1.")],
    [("system", "Be exact."), ("user", "A"), ("assistant", "B"), ("user", "C")],
]


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain on PATH (apt-get install golang-go)")
@pytest.mark.parametrize("family", ["chatml", "llama3", "mistral", "gemma"])
def test_go_template_renders_like_the_jinja_template(family, tmp_path):
    import jinja2

    env = jinja2.Environment()
    jinja = env.from_string(TEMPLATES[family])
    cases, expected = [], []
    for conv in CONVERSATIONS:
        msgs = [{"role": r, "content": c} for r, c in conv]
        if family == "chatml" and msgs[0]["role"] != "system":
            # Ollama prepends the Modelfile's SYSTEM (the template's default) as a message.
            msgs_go = [{"role": "system", "content": "You are a helpful assistant."}] + msgs
        else:
            msgs_go = msgs
        text = jinja.render(messages=msgs, add_generation_prompt=True, bos_token=BOS[family], eos_token=EOS[family])
        expected.append(text[len(BOS[family]):])  # llama.cpp adds BOS itself when tokenizing
        cases.append([{"Role": m["role"], "Content": m["content"]} for m in msgs_go])
    (tmp_path / "main.go").write_text(GO_MAIN)
    proc = subprocess.run(["go", "run", str(tmp_path / "main.go")], input=json.dumps(
        {"Template": go_template(family, TEMPLATES[family]), "Cases": cases}), capture_output=True, text=True,
        timeout=300, env={**os.environ, "GO111MODULE": "off"}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected
