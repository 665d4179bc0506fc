"""Write the bundled Wivel preference pairs from the supervised demo set (stdlib only, deterministic).

    python data/make_preference_pairs.py [--out DIR]

For every line of ``dsl_train.jsonl`` (72) and ``dsl_eval.jsonl`` (21, held out) one pair in
TRL's standard form, ``{"prompt", "chosen", "rejected", "task"}``, goes to
``dsl_pref_train.jsonl`` and ``dsl_pref_eval.jsonl``: ``chosen`` is the correct completion as
it is, ``rejected`` a plausible wrong one made by a rule:

* ``code``: every error code swapped for a real Wivel code of another construct
  (E-DRZ-12 -> E-FOG-04, ...);
* ``args``: the two arguments of wv.drizzle / wv.fogpuff / wv.rest swapped
  (wv.drizzle(250ml, b1) -> wv.drizzle(b1, 250ml));
* ``both`` of these, on answers that have a code and a call (the rule turns with the line);
* for answers with neither, one mistake Wivel names an error for: single quotes in
  wv.note, a 12-hour clock in ``at``, ``every`` without the h suffix, the grove's closing
  brace left out, a bed ID without the b, wv.tank without its L, ``garden`` for ``grove``,
  or wv.drizzle and wv.fogpuff mixed up.

Every rejected answer differs from its chosen one (asserted). Run it again after changing
the supervised files; ``tests/unit/test_preference_data.py`` checks that it reproduces the
committed files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = {"dsl_train.jsonl": "dsl_pref_train.jsonl", "dsl_eval.jsonl": "dsl_pref_eval.jsonl"}
# Every Wivel error code (data/README.md), in table order.
CODES = ["E-GRV-01", "E-AT-02", "E-NOTE-03", "E-FOG-04", "E-EVR-05", "E-TNK-06", "E-BED-07", "E-RST-08",
         "E-DRY-09", "E-DRZ-11", "E-DRZ-12"]
_CODE = re.compile(r"E-[A-Z]+-\d\d")
_CALL = re.compile(r"(wv\.(?:drizzle|fogpuff|rest))\(([^,()]+), ([^,()]+)\)")


def construct(code: str) -> str:
    """``E-DRZ-12`` -> ``DRZ``."""
    return code.split("-")[1]


def swap_codes(text: str, index: int) -> str | None:
    """Each error code replaced by a code of another construct that the text does not hold."""
    found = list(dict.fromkeys(_CODE.findall(text)))
    if not found:
        return None
    taken = set(found)
    swaps = {}
    for code in found:
        others = [c for c in CODES if construct(c) != construct(code) and c not in taken]
        pick = others[(index + CODES.index(code)) % len(others)]
        swaps[code] = pick
        taken.add(pick)
    return _CODE.sub(lambda m: swaps[m.group(0)], text)


def swap_args(text: str, index: int) -> str | None:
    """The two arguments of every wv.drizzle / wv.fogpuff / wv.rest call swapped."""
    if not _CALL.search(text):
        return None
    return _CALL.sub(lambda m: f"{m.group(1)}({m.group(3)}, {m.group(2)})", text)


def _twelve_hour(m: re.Match) -> str:
    hour, minute = int(m.group(1)), m.group(2)
    return f"at {hour % 12 or 12}:{minute}{'pm' if hour >= 12 else 'am'}"


def _mixed_up(text: str) -> str | None:
    if "wv.drizzle" not in text and "wv.fogpuff" not in text:
        return None
    return re.sub(r"wv\.(drizzle|fogpuff)", lambda m: "wv.fogpuff" if m.group(1) == "drizzle" else "wv.drizzle",
                  text)


def _unclosed(text: str) -> str | None:
    lines = text.split("\n")
    if "}" not in lines:
        return None
    lines.remove("}")
    return "\n".join(lines)


# One mistake each, for answers with neither a code nor a call to swap; the first that applies.
FALLBACKS = [
    lambda t: re.sub(r'wv\.note\("([^"]*)"\)', r"wv.note('\1')", t),  # E-NOTE-03
    lambda t: re.sub(r"\bat (\d\d):(\d\d)", _twelve_hour, t),  # E-AT-02
    lambda t: re.sub(r"\bevery (\d+)h\b", r"every \1", t),  # E-EVR-05
    _unclosed,  # E-GRV-01
    lambda t: re.sub(r"\bbed b(\d+) holds", r"bed \1 holds", t),  # E-BED-07
    lambda t: re.sub(r"wv\.tank\((\d+)L\)", r"wv.tank(\1)", t),  # the litres' unit left out
    lambda t: re.sub(r"\bgrove\b", "garden", t),  # a keyword Wivel does not have
    _mixed_up,  # a construct's meaning given to another
]


def rejected_for(completion: str, index: int) -> str:
    """A plausible wrong answer for ``completion`` (the ``index``-th line of its file)."""
    code, args = swap_codes(completion, index), swap_args(completion, index)
    if code and args:
        rule = ("code", "args", "both")[index % 3]
        out = {"code": code, "args": args, "both": swap_args(code, index)}[rule]
    else:
        out = code or args
    for fallback in FALLBACKS:
        if out is not None and out != completion:
            break
        out = fallback(completion)
    assert out is not None and out != completion, f"no rule changes line {index + 1}: {completion!r}"
    return out


def make_pairs(source: Path) -> list[dict]:
    pairs = []
    for index, line in enumerate(source.read_text(encoding="utf-8").splitlines()):
        record = json.loads(line)
        chosen = record["completion"]
        rejected = rejected_for(chosen, index)
        assert rejected != chosen
        pairs.append({"prompt": record["prompt"], "chosen": chosen, "rejected": rejected, "task": record["task"]})
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write to (default: data/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, out_name in SOURCES.items():
        pairs = make_pairs(HERE / name)
        text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs)
        (args.out / out_name).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {len(pairs)} pairs to {args.out / out_name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
