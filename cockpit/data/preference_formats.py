"""Preference records in the forms people have, detected per record and normalized into one
:class:`PreferenceExample`: a prompt (chat messages ending with a user turn) and either two
answers, one better than the other (``pairs``: DPO, ORPO), or one answer labelled good or bad
(``unpaired``: KTO).

=======================  ======================================================================
form                     one record
=======================  ======================================================================
``trl-standard``         ``{"prompt": "...", "chosen": "...", "rejected": "...", "system": "..."}``
``trl-conversational``   the same keys with message lists (``[{"role", "content"}]``; a single
                         message object is accepted for an answer)
``trl-implicit``         only ``chosen`` and ``rejected``, each a whole conversation: the turns
                         they share are the prompt, the last assistant turn of each the answer
``sharegpt``             ``{"conversations": [{"from": "human", "value": ...}], "chosen":
                         {"from": "gpt", "value": ...}, "rejected": {...}}`` (LLaMA-Factory)
``kto-standard``         ``{"prompt": "...", "completion": "...", "label": true}``
``kto-conversational``   the same keys with message lists
``kto-messages``         ``{"messages": [...], "label": false}``: the last assistant turn is the answer
``kto-sharegpt``         ``{"conversations": [...], "label": true}``
=======================  ======================================================================

A label is a JSON boolean, or the text ``true``/``false`` (CSV has no booleans). Messages
are read by the supervised formats' own parsers (``cockpit.data.formats``), so content parts,
ShareGPT speakers and tool descriptions mean the same here as there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cockpit.data.columns import apply_columns
from cockpit.data.formats import _parse_messages, _parse_sharegpt, label_value
from cockpit.data.records import RecordError, clean_text, last_user_content, record_place, type_name

PAIRED, UNPAIRED = "pairs", "unpaired"
FORMS = ("trl-standard", "trl-conversational", "trl-implicit", "sharegpt",
         "kto-standard", "kto-conversational", "kto-messages", "kto-sharegpt")
NOT_PREFERENCE = "not_preference"
"""The Problem kind of a record that is no preference record at all (plain supervised data)."""
ACCEPTED = ("pairs as {prompt, chosen, rejected} (strings or messages), chosen/rejected conversations "
            "sharing their prompt, ShareGPT conversations + chosen + rejected; or answers labelled good/bad "
            "as {prompt, completion, label} or {messages, label} with label true/false")
_TURN_KEYS = ("role", "content", "from", "value")
_ANSWER_NAMES = {"chosen": "chosen answer", "rejected": "rejected answer", "completion": "completion"}


@dataclass
class PreferenceExample:
    """One preference example: a pair (``chosen``/``rejected``) or one labelled answer
    (``completion``/``label``), after the prompt it answers."""

    prompt: list[dict]
    """``[{"role", "content"}, ...]`` ending with a user turn (a system message first if any)."""
    chosen: str | None = None
    rejected: str | None = None
    completion: str | None = None
    label: bool | None = None
    """True: a desirable answer; False: an undesirable one."""
    path: str = ""
    line: int | None = None
    row: int | None = None

    @property
    def kind(self) -> str:
        """:data:`PAIRED` or :data:`UNPAIRED`."""
        return PAIRED if self.chosen is not None else UNPAIRED

    def prompt_text(self) -> str:
        """The last user message (what a probe prompt asks)."""
        return last_user_content(self.prompt)

    @property
    def where(self) -> str:
        """``file:12`` or ``data.parquet:row 12``, as problems say it."""
        return record_place(self.path, self.line, self.row)

    def prompt_key(self) -> tuple:
        """The prompt's identity: what the split keeps on one side."""
        return tuple((m["role"], m["content"]) for m in self.prompt)

    def answers(self) -> list[str]:
        """The answer texts: chosen and rejected, or the one completion."""
        if self.kind == PAIRED:
            return [self.chosen or "", self.rejected or ""]
        return [self.completion or ""]


def is_preference_record(obj: Mapping) -> bool:
    """Chosen or rejected (both, for a valid pair), or a boolean (or ``true``/``false``) label beside
    prompt/completion, messages or conversations."""
    if not isinstance(obj, Mapping):
        return False
    if obj.get("chosen") is not None or obj.get("rejected") is not None:
        return True  # half a pair is a broken preference record, not supervised data
    if label_value(obj.get("label")) is None:
        return False
    return any(obj.get(k) is not None for k in ("prompt", "completion", "messages", "conversations"))


# ---------------------------------------------------------------- pieces of a record


def _is_sharegpt_turn(turn: Any) -> bool:
    return isinstance(turn, dict) and "role" not in turn and ("from" in turn or "value" in turn)


def _messages(value: Any, key: str) -> list[dict]:
    """A message list (or one message object) as ``[{"role", "content"}]``; ShareGPT turns too."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        got = "an empty array" if value == [] else type_name(value)
        raise RecordError(f"'{key}' must be a string or {{role, content}} messages, got {got}", "type")
    try:
        if any(_is_sharegpt_turn(t) for t in value):
            parsed = _parse_sharegpt({"conversations": value})
        else:
            parsed = _parse_messages(value, key)
    except RecordError as exc:
        raise RecordError(f"'{key}': {exc}", exc.kind) from exc
    return [{"role": m["role"], "content": m["content"]} for m in parsed]


def _prompt(value: Any) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if value is None:
        raise RecordError("missing key 'prompt'", "keys")
    return _messages(value, "prompt")


def _answer(value: Any, key: str) -> str:
    """One answer: a string, one assistant message, or a list holding one."""
    if isinstance(value, str):
        return value
    if value is None:
        raise RecordError(f"missing key '{key}'", "keys")
    if not isinstance(value, (dict, list)):
        raise RecordError(f"'{key}' must be a string or an assistant message, got {type_name(value)}", "type")
    messages = _messages(value, key)
    if len(messages) != 1:
        raise RecordError(f"'{key}' must be one assistant answer, got {len(messages)} messages", "structure")
    if messages[0]["role"] != "assistant":
        raise RecordError(f"'{key}' must be the assistant's answer, got role {messages[0]['role']!r}", "role")
    return messages[0]["content"]


def _split_conversation(messages: list[dict], key: str) -> tuple[list[dict], str]:
    """(prompt, answer) of a whole conversation: the answer is its last turn, the assistant's."""
    if messages[-1]["role"] != "assistant":
        raise RecordError(f"the last turn of '{key}' must be the assistant's answer, got {messages[-1]['role']!r}",
                          "structure")
    if len(messages) < 2:
        raise RecordError(f"'{key}' holds only the answer: there is no prompt", "structure")
    return messages[:-1], messages[-1]["content"]


def _renamed_turns(obj: dict, columns: Mapping[str, str]) -> dict:
    """The column mapping's turn keys (from/value, role/content) inside the answer fields too."""
    turn = {theirs: ours for ours, theirs in columns.items() if ours in _TURN_KEYS}
    if not turn:
        return obj

    def rename(value: Any) -> Any:
        if isinstance(value, dict):
            return {turn.get(k, k): v for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) if isinstance(v, dict) else v for v in value]
        return value

    return {k: rename(v) if k in ("prompt", "chosen", "rejected", "completion") else v for k, v in obj.items()}


def _finish_prompt(messages: list[dict], system: Any, *, clean: bool, system_prompt: str | None) -> list[dict]:
    if system is not None:
        if not isinstance(system, str):
            raise RecordError(f"'system' must be a string, got {type_name(system)}", "type")
        if messages and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}, *messages]
    if clean:
        messages = [{**m, "content": clean_text(m["content"])} for m in messages]
    if messages and messages[0]["role"] == "system" and not messages[0]["content"].strip():
        messages = messages[1:]  # an empty system message says nothing; templates add their own
    if system_prompt and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    roles = [m["role"] for m in messages]
    if "user" not in roles:
        if set(roles) <= {"system"}:
            raise RecordError("empty prompt", "empty")
        raise RecordError("the prompt has no user turn", "structure")
    for i, role in enumerate(roles[1:], start=2):
        if role == "system":
            raise RecordError(f"prompt message {i}: a system message may only come first", "structure")
    if roles[-1] != "user":
        raise RecordError(f"the prompt must end with a user turn, got {roles[-1]!r}", "structure")
    single = roles in (["user"], ["system", "user"])
    for i, msg in enumerate(messages, start=1):
        if not msg["content"].strip():
            raise RecordError("empty prompt" if single else f"empty prompt (message {i}, {msg['role']})", "empty")
    return messages


def _finish_answer(text: str, key: str, *, clean: bool) -> str:
    if clean:
        text = clean_text(text)
    if not text.strip():
        raise RecordError(f"empty {_ANSWER_NAMES[key]}", "empty")
    return text


# ---------------------------------------------------------------- one record


def parse_preference_record(obj: Any, *, columns: Mapping[str, str] | None = None, clean: bool = True,
                            system_prompt: str | None = None) -> tuple[str, PreferenceExample]:
    """``(form, example)`` of one decoded record; RecordError (with its ``kind``) when it is no
    valid preference record (kind :data:`NOT_PREFERENCE` when it is no preference record at all)."""
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type_name(obj)}", "type")
    columns = columns or {}
    obj = _renamed_turns(apply_columns(obj, columns), columns)
    has = {k for k in ("chosen", "rejected") if obj.get(k) is not None}
    has_label = obj.get("label") is not None
    if has and has_label:
        raise RecordError("has both chosen/rejected and a 'label': a record is a pair (stage=dpo) or one answer "
                          "labelled good or bad (stage=kto), not both", "keys")
    if len(has) == 1:
        present, absent = ("chosen", "rejected") if "chosen" in has else ("rejected", "chosen")
        raise RecordError(f"has '{present}' but no '{absent}': a pair needs both answers", "keys")
    if has:
        return _parse_pair(obj, clean=clean, system_prompt=system_prompt)
    if has_label:
        return _parse_labelled(obj, clean=clean, system_prompt=system_prompt)
    keys = ", ".join(sorted(map(str, obj))[:6]) or "none"
    raise RecordError("not a preference record: needs 'chosen' and 'rejected' (a pair), or a true/false 'label' "
                      f"beside prompt/completion or messages (found keys: {keys})", NOT_PREFERENCE)


def _parse_pair(obj: dict, *, clean: bool, system_prompt: str | None) -> tuple[str, PreferenceExample]:
    chosen_raw, rejected_raw = obj["chosen"], obj["rejected"]
    system = obj.get("system")
    if obj.get("conversations") is not None:
        if obj.get("prompt") is not None:
            raise RecordError("has both 'prompt' and 'conversations': one of them is the prompt", "keys")
        form = "sharegpt"
        prompt = [{"role": m["role"], "content": m["content"]} for m in _sharegpt_prompt(obj)]
        system = None  # _parse_sharegpt put it (and the tools) in the prompt already
        chosen, rejected = _answer(chosen_raw, "chosen"), _answer(rejected_raw, "rejected")
    elif obj.get("prompt") is not None:
        plain = all(isinstance(v, str) for v in (obj["prompt"], chosen_raw, rejected_raw))
        form = "trl-standard" if plain else "trl-conversational"
        prompt = _prompt(obj["prompt"])
        chosen, rejected = _answer(chosen_raw, "chosen"), _answer(rejected_raw, "rejected")
    else:
        if isinstance(chosen_raw, str) or isinstance(rejected_raw, str):
            raise RecordError("missing key 'prompt': answers given as text need the prompt they answer "
                              "(or give chosen and rejected as whole conversations)", "keys")
        form = "trl-implicit"
        head, chosen = _split_conversation(_messages(chosen_raw, "chosen"), "chosen")
        other, rejected = _split_conversation(_messages(rejected_raw, "rejected"), "rejected")
        same = [(m["role"], clean_text(m["content"]) if clean else m["content"]) for m in head] == \
               [(m["role"], clean_text(m["content"]) if clean else m["content"]) for m in other]
        if not same:
            raise RecordError("chosen and rejected differ before their last answer: without a 'prompt', the "
                              "turns before the answers are the prompt and must be the same", "structure")
        prompt = head
    ex = PreferenceExample(prompt=_finish_prompt(prompt, system, clean=clean, system_prompt=system_prompt),
                           chosen=_finish_answer(chosen, "chosen", clean=clean),
                           rejected=_finish_answer(rejected, "rejected", clean=clean))
    if ex.chosen == ex.rejected:
        raise RecordError("chosen and rejected are the same answer: the pair teaches nothing", "identical")
    return form, ex


def _sharegpt_prompt(obj: dict) -> list[dict]:
    try:
        return _parse_sharegpt(obj)
    except RecordError as exc:
        raise RecordError(f"'conversations': {exc}", exc.kind) from exc


def _parse_labelled(obj: dict, *, clean: bool, system_prompt: str | None) -> tuple[str, PreferenceExample]:
    label = label_value(obj["label"])
    if label is None:
        raise RecordError(f"'label' must be true or false, got {obj['label']!r}", "type")
    system = obj.get("system")
    if obj.get("messages") is not None:
        form = "kto-messages"
        prompt, completion = _split_conversation(_messages(obj["messages"], "messages"), "messages")
    elif obj.get("conversations") is not None:
        form = "kto-sharegpt"
        prompt, completion = _split_conversation(_sharegpt_prompt(obj), "conversations")
        system = None
    elif obj.get("prompt") is not None or obj.get("completion") is not None:
        plain = isinstance(obj.get("prompt"), str) and isinstance(obj.get("completion"), str)
        form = "kto-standard" if plain else "kto-conversational"
        prompt, completion = _prompt(obj.get("prompt")), _answer(obj.get("completion"), "completion")
    else:
        raise RecordError("a 'label' without an answer: needs prompt and completion, or messages", "keys")
    prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
    ex = PreferenceExample(prompt=_finish_prompt(prompt, system, clean=clean, system_prompt=system_prompt),
                           completion=_finish_answer(completion, "completion", clean=clean), label=label)
    return form, ex
