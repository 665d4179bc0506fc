"""The data formats people have, detected per record and normalized into one :class:`Example`.

========================  ====================================================================
format                    one record
========================  ====================================================================
``prompt_completion``     ``{"prompt": "...", "completion": "...", "system": "..."}`` (TRL's
                          conversational form too: prompt and completion as message lists)
``messages``              ``{"messages": [{"role": "user", "content": "..."}, ...]}`` (OpenAI
                          chat; ``content`` may be a list of text parts; a turn's
                          ``loss_weight``/``weight`` of 0 keeps it out of the loss)
``alpaca``                ``{"instruction": "...", "input": "...", "output": "...",
                          "system": "...", "history": [["q", "a"], ...]}``
``sharegpt``              ``{"conversations": [{"from": "human", "value": "..."},
                          {"from": "gpt", "value": "..."}], "system": "...", "tools": "..."}``
``text``                  ``{"text": "..."}``: continued pretraining, every token learned
========================  ====================================================================

A record's format is decided by its keys (after the optional column mapping), never by
the file's other records: a record with the keys of two formats is a problem naming both.
``data_format`` forces one format for every record. Preference data (``chosen``/``rejected``
pairs, KTO's boolean ``label``) is recognised and refused with its reason: supervised
fine-tuning would learn the rejected answers too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cockpit.data.columns import apply_columns, suggest_columns
from cockpit.data.records import ROLES, Example, RecordError, clean_text, type_name

FORMATS = ("prompt_completion", "messages", "alpaca", "sharegpt", "text")
DATA_FORMATS = ("auto", *FORMATS)
SUPERVISED = ("prompt_completion", "messages", "alpaca", "sharegpt")

# The keys that identify a format, in the order they are looked for.
_MARKERS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction",),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
# ShareGPT's speaker names -> chat roles. function_call is the assistant calling a tool
# (learned), observation the tool's answer (context, like a user turn).
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant",
                  "system": "system", "function_call": "assistant", "observation": "tool", "tool": "tool"}

def _present(obj: Mapping) -> list[str]:
    """Formats whose marker keys the record has (None values count as absent: Arrow rows
    carry every column of the file, empty where a record lacked it)."""
    return [fmt for fmt, keys in _MARKERS.items() if any(obj.get(k) is not None for k in keys)]


def label_value(value: Any) -> bool | None:
    """A KTO label as a bool: a JSON boolean, or ``true``/``false`` as text (CSV has no
    booleans); None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def detect_format(obj: Mapping) -> str:
    """The format of one record from its keys; RecordError when none or two match."""
    if obj.get("chosen") is not None and obj.get("rejected") is not None:
        raise RecordError("a preference pair (chosen/rejected): supervised fine-tuning learns one answer per "
                          "example; train preference data with stage=dpo (pairs) or stage=kto (labelled answers)",
                          "preference")
    found = _present(obj)
    if label_value(obj.get("label")) is not None and set(found) & set(SUPERVISED):
        raise RecordError("KTO preference data (a true/false 'label' per answer): supervised fine-tuning would "
                          "learn the undesirable answers too; train preference data with stage=dpo (pairs) or "
                          "stage=kto (labelled answers), or set data_format= to train on them anyway",
                          "preference")
    if len(found) == 1:
        return found[0]
    if not found:
        keys = sorted(map(str, obj))
        raise RecordError("needs 'prompt' and 'completion' keys or a 'messages' array, or Alpaca's "
                          "instruction/output, ShareGPT's conversations, or text (found keys: "
                          f"{', '.join(keys[:6]) or 'none'}){suggest_columns(keys)}", "keys")
    names = [_marker_text(f) for f in found]
    raise RecordError(f"has both {names[0]} and {names[1]} keys (two formats); set "
                      f"data_format={found[0]} or data_format={found[1]} to choose one", "keys")


def _marker_text(fmt: str) -> str:
    return "/".join(f"'{k}'" for k in _MARKERS[fmt])


# ---------------------------------------------------------------- content of one message


def _part_text(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type", "text") == "text":
        for key in ("text", "value", "content"):
            if isinstance(part.get(key), str):
                return part[key]
    return None


def content_text(value: Any) -> str | None:
    """Content as a string; lists of text parts (OpenAI's ``{"type": "text", "text": ...}``,
    LLaMA-Factory's ``{"type": "text", "value": ...}``) are joined. None when not text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        texts = [_part_text(p) for p in value]
        if all(t is not None for t in texts):
            return "".join(texts)  # type: ignore[arg-type]
    return None


def _non_text_part(value: Any) -> str | None:
    if isinstance(value, list):
        for p in value:
            if isinstance(p, dict) and p.get("type") not in (None, "text"):
                return str(p.get("type"))
    return None


def _learned(msg: Mapping, where: str) -> bool:
    """A turn's loss weight: absent or 1 learns it, 0 keeps it out of the loss."""
    for key in ("loss_weight", "weight"):
        w = msg.get(key)
        if w is None:
            continue
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w not in (0, 1):
            raise RecordError(f"{where}: '{key}' must be 0 or 1, got {w!r} (fractional loss weights are not "
                              "supported)", "type")
        return w == 1
    return True


def _tool_calls_text(calls: Any) -> str | None:
    """OpenAI's assistant ``tool_calls`` as the JSON text the model should learn to write."""
    if not isinstance(calls, list) or not calls:
        return None
    out = []
    for c in calls:
        fn = c.get("function", c) if isinstance(c, dict) else None
        if not isinstance(fn, dict) or "name" not in fn:
            return None
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass
        out.append({"name": fn["name"], "arguments": args})
    return json.dumps(out[0] if len(out) == 1 else out, ensure_ascii=False)


# ---------------------------------------------------------------- the formats


def _objects(raw: Any, key: str, what: str, item: str) -> list[dict]:
    """A non-empty array of objects (``messages``, ``conversations``), or the RecordError that says why not."""
    if not isinstance(raw, list) or not raw:
        got = "an empty array" if raw == [] else type_name(raw)
        raise RecordError(f"'{key}' must be a non-empty array of {what}, got {got}", "type")
    for i, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict):
            raise RecordError(f"{item} {i} must be an object, got {type_name(entry)}", "type")
    return raw


def _parse_messages(raw: Any, key: str = "messages") -> list[dict]:
    messages = []
    for i, msg in enumerate(_objects(raw, key, "{role, content} objects", "message"), start=1):
        if msg.get("role") is None or ("content" not in msg and "tool_calls" not in msg):
            missing = "role" if msg.get("role") is None else "content"
            raise RecordError(f"message {i} has no '{missing}' key", "keys")
        role = msg["role"]
        if role not in ROLES:
            raise RecordError(f"message {i} has unknown role {role!r} (allowed: {', '.join(ROLES)})", "role")
        content = content_text(msg.get("content"))
        if content is None and role == "assistant" and msg.get("content") in (None, ""):
            content = _tool_calls_text(msg.get("tool_calls"))
        if content is None:
            other = _non_text_part(msg.get("content"))
            if other:
                raise RecordError(f"message {i} ({role}) has a {other!r} part: only text can be trained", "type")
            raise RecordError(f"message {i} ({role}): 'content' must be a string, "
                              f"got {type_name(msg.get('content'))}", "type")
        entry = {"role": role, "content": content}
        if role == "assistant" and not _learned(msg, f"message {i}"):
            entry["train"] = False
        messages.append(entry)
    return messages


def _parse_sharegpt(obj: Mapping) -> list[dict]:
    messages = []
    for i, turn in enumerate(_objects(obj["conversations"], "conversations", "{from, value} turns", "turn"), start=1):
        speaker = turn.get("from", turn.get("role"))
        if speaker is None:
            raise RecordError(f"turn {i} has no 'from' key", "keys")
        role = SHAREGPT_ROLES.get(str(speaker).lower()) if isinstance(speaker, str) else None
        if role is None:
            raise RecordError(f"turn {i} has unknown 'from' {speaker!r} (allowed: human, gpt, system, "
                              "function_call, observation, user, assistant)", "role")
        value = turn.get("value", turn.get("content"))
        content = content_text(value)
        if content is None:
            raise RecordError(f"turn {i} ({speaker}): 'value' must be a string, got {type_name(value)}", "type")
        entry = {"role": role, "content": content}
        if role == "assistant" and not _learned(turn, f"turn {i}"):
            entry["train"] = False
        messages.append(entry)
    system = obj.get("system")
    if system is not None:
        if not isinstance(system, str):
            raise RecordError(f"'system' must be a string, got {type_name(system)}", "type")
        if messages[0]["role"] == "system":
            raise RecordError("has both a 'system' key and a system turn", "structure")
        messages.insert(0, {"role": "system", "content": system})
    tools = obj.get("tools")
    if tools not in (None, "", []):
        messages = _with_tools(messages, tools)
    return messages


def _with_tools(messages: list[dict], tools: Any) -> list[dict]:
    """The tool descriptions go into the system message, where every chat template shows them."""
    text = tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False)
    note = f"You can call these tools:\n{text}"
    if messages[0]["role"] == "system":
        return [{"role": "system", "content": messages[0]["content"] + "\n\n" + note}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def _string(obj: Mapping, key: str, *, required: bool) -> str | None:
    if key not in obj:
        if required:
            raise RecordError(f"missing key '{key}'", "keys")
        return None
    value = obj[key]
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise RecordError(f"'{key}' must be a string, got {type_name(value)}", "type")
    return value


def _is_message_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def _parse_prompt_completion(obj: Mapping) -> list[dict]:
    for key in ("prompt", "completion"):
        if key not in obj:
            raise RecordError(f"missing key '{key}'", "keys")
    system = _string(obj, "system", required=False)
    prompt, completion = obj["prompt"], obj["completion"]
    if _is_message_list(prompt) or _is_message_list(completion):  # TRL's conversational form
        head = _parse_messages(prompt, "prompt") if _is_message_list(prompt) else \
            [{"role": "user", "content": _string(obj, "prompt", required=True)}]
        tail = _parse_messages(completion, "completion") if _is_message_list(completion) else \
            [{"role": "assistant", "content": _string(obj, "completion", required=True)}]
        messages = head + tail
    else:
        messages = [{"role": "user", "content": _string(obj, "prompt", required=True)},
                    {"role": "assistant", "content": _string(obj, "completion", required=True)}]
    if system is not None and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _parse_alpaca(obj: Mapping) -> list[dict]:
    instruction = _string(obj, "instruction", required=True)
    extra = _string(obj, "input", required=False)
    if obj.get("output") is None:
        raise RecordError("an Alpaca record without 'output': there is no answer to learn", "keys")
    output = _string(obj, "output", required=True)
    system = _string(obj, "system", required=False)
    messages = [{"role": "system", "content": system}] if system is not None else []
    history = obj.get("history")
    if history not in (None, []):
        if not isinstance(history, list):
            raise RecordError(f"'history' must be an array of [instruction, answer] pairs, got {type_name(history)}",
                              "type")
        for i, pair in enumerate(history, start=1):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise RecordError(f"history entry {i} must be a pair of strings [instruction, answer]", "type")
            messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    user = "\n".join(part for part in (instruction, extra) if part and part.strip())
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return messages


_USED_KEYS = {
    "prompt_completion": {"prompt", "completion", "system"},
    "messages": {"messages"},
    "alpaca": {"instruction", "input", "output", "system", "history"},
    "sharegpt": {"conversations", "system", "tools"},
    "text": {"text"},
}
_PARSERS = {"prompt_completion": _parse_prompt_completion, "alpaca": _parse_alpaca, "sharegpt": _parse_sharegpt,
            "messages": lambda obj: _parse_messages(obj["messages"])}


def _check_conversation(messages: list[dict]) -> None:
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        raise RecordError("no assistant turn: there is no answer to learn", "structure")
    if roles[-1] != "assistant":
        raise RecordError(f"the last message must be the assistant's answer, got {roles[-1]!r}", "structure")
    if "user" not in roles:
        raise RecordError("no user turn before the assistant's answer", "structure")
    for i, role in enumerate(roles[1:], start=2):
        if role == "system":
            raise RecordError(f"message {i}: a system message may only come first", "structure")


def parse_record(obj: Any, *, data_format: str = "auto", columns: Mapping[str, str] | None = None,
                 clean: bool = True, system_prompt: str | None = None, line: int = 0) -> Example:
    """Turn one decoded record into an :class:`Example`.

    Raises :class:`RecordError` (a ValueError with a user-facing message and a ``kind``)
    when the record is not a valid example of its format.
    """
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type_name(obj)}", "type")
    obj = apply_columns(obj, columns or {})
    if data_format == "auto":
        fmt = detect_format(obj)
    else:
        fmt = data_format
        if not any(obj.get(k) is not None for k in _MARKERS[fmt]):
            keys = ", ".join(sorted(map(str, obj))[:6]) or "none"
            raise RecordError(f"not a {fmt} record: no {_marker_text(fmt)} key (found keys: {keys})", "keys")
    if fmt == "text":
        return _text_example(obj, clean=clean, line=line)
    messages = _PARSERS[fmt](obj)
    if clean:
        messages = [{**m, "content": clean_text(m["content"])} for m in messages]
    if messages[0]["role"] == "system" and not messages[0]["content"].strip():
        messages = messages[1:]  # an empty system message says nothing; templates add their own
    if system_prompt and messages and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    _check_conversation(messages)
    for i, msg in enumerate(messages, start=1):
        if not msg["content"].strip():
            what = {"user": "prompt", "assistant": "completion"}.get(msg["role"], msg["role"])
            where = "" if fmt in ("prompt_completion", "alpaca") and len(messages) <= 3 else f" (message {i})"
            raise RecordError(f"empty {what}{where}", "empty")
    meta = {k: v for k, v in obj.items() if k not in _USED_KEYS[fmt] and v is not None}
    return Example(messages=messages, line=line, meta=meta, format=fmt)


def _text_example(obj: Mapping, *, clean: bool, line: int) -> Example:
    text = obj.get("text")
    if not isinstance(text, str):
        raise RecordError(f"'text' must be a string, got {type_name(text)}", "type")
    if clean:
        text = clean_text(text)
    if not text.strip():
        raise RecordError("empty text", "empty")
    meta = {k: v for k, v in obj.items() if k != "text" and v is not None}
    return Example(messages=[], line=line, meta=meta, format="text", text=text)
