"""Turning measured rows into the printed table and the ratios against the issue's targets.

With ``--repeats`` > 1 every variant has several rows; the table shows the median of
each number (the median ignores one disturbed run, a mean would not), and the JSON
keeps every row.
"""

from __future__ import annotations

import statistics

from tests.bench.variants import TRAINING_VARIANTS

# (name, numerator, denominator, target or None, what it shows); a higher useful tokens/s is better
RATIOS = [
    ("3/1", "cockpit", "recipe_padded", 3.0, "cockpit vs the workshop recipe"),
    ("3a/2", "cockpit_learned", "recipe_dynamic", 1.15, "loss only where learned vs plain HF"),
    ("3/2", "cockpit", "recipe_dynamic", 1.35, "+ packing (the defaults) vs plain HF"),
    ("3a/3c", "cockpit_learned", "cockpit_hf_loss", None, "learned-position loss vs transformers'"),
    ("4/3", "cockpit_tui", "cockpit", 0.97, "cockpit with the dashboard vs headless"),
    ("5/3", "cockpit_ddp", "cockpit", None, "2 DDP processes vs 1 process"),
    ("6/3", "cockpit_busy", "cockpit", 0.55, "beside a busy process vs alone"),
    ("6b/3", "cockpit_busy_fixed", "cockpit", None, "the same, thread count fixed (before)"),
]
# (name, numerator, denominator, target or None, what it shows); a lower peak RSS is better
RSS_RATIOS = [
    ("3a/2 RSS", "cockpit_learned", "recipe_dynamic", 0.85, "peak RSS, loss only where learned"),
    ("3/2 RSS", "cockpit", "recipe_dynamic", 0.85, "peak RSS, the defaults vs plain HF"),
]
FIRST_PAINT_TARGET_S = 0.5
EVENT_TO_SCREEN_TARGET_S = 1.0

NUMBERS = ("useful_tok_s", "seen_tok_s", "examples_s", "tokens_per_example", "train_s", "process_s",
           "peak_rss_mib", "final_loss", "tui_cpu_s", "tui_peak_rss_mib", "tui_end_latency_s")


def aggregate(rows: list[dict]) -> dict:
    """The median of each number over the successful repeats of one variant."""
    good = [r for r in rows if r.get("ok")]
    out: dict = {"repeats": len(rows), "ok_repeats": len(good), "ok": bool(good),
                 "errors": [r["error"] for r in rows if r.get("error")]}
    for key in NUMBERS:
        values = [r[key] for r in good if isinstance(r.get(key), (int, float))]
        if values:
            out[key] = round(statistics.median(values), 4)
    loads = [r["load_before"][0] for r in rows if r.get("load_before")]
    out["load_before_1min"] = round(statistics.median(loads), 2) if loads else None
    return out


def ratios(variants: dict[str, dict]) -> list[dict]:
    """Useful tokens/s ratios (at least the target) and peak RSS ratios (at most the target),
    with a PASS/MISS verdict where there is a target."""
    out = []
    for table, key, higher in ((RATIOS, "useful_tok_s", True), (RSS_RATIOS, "peak_rss_mib", False)):
        for name, num, den, target, what in table:
            if num not in variants or den not in variants:
                continue  # not both sides were asked for (--only)
            a = variants.get(num, {}).get(key)
            b = variants.get(den, {}).get(key)
            value = round(a / b, 3) if a and b else None
            verdict = None if value is None or target is None else (
                "PASS" if (value >= target if higher else value <= target) else "MISS")
            bound = "target_min" if higher else "target_max"
            out.append({"ratio": name, "what": what, "value": value, bound: target, "verdict": verdict})
    return out


def latency_verdicts(latency: dict) -> list[dict]:
    out = []
    for key, label, target in (("first_paint", "first paint", FIRST_PAINT_TARGET_S),
                               ("event_to_screen", "event to screen", EVENT_TO_SCREEN_TARGET_S)):
        m = latency.get(key)
        if m is None:
            continue
        value = m.get("median_s")
        verdict = None if value is None else ("PASS" if value < target else "MISS")
        out.append({"measure": key, "label": label, "median_s": value, "n": len(m.get("values_s", [])),
                    "target_max_s": target, "verdict": verdict, "failures": m.get("failures", [])})
    return out


def _fmt(value, spec: str) -> str:
    """``value`` formatted by ``spec`` ("8.1f"), or a dash of the same width when missing."""
    width = int(spec.split(".")[0].rstrip("fd") or 0)
    return f"{'-':>{width}}" if value is None else format(value, spec)


def format_table(variants: dict[str, dict], ratio_rows: list[dict], latency_rows: list[dict]) -> str:
    lines = []
    head = (f"{'variant':36} {'useful':>8} {'padded':>8} {'ex/s':>6} {'tok/ex':>6} {'train':>7} {'process':>8}"
            f" {'peak RSS':>9} {'final':>7} {'load':>5}")
    unit = (f"{'':36} {'tok/s':>8} {'tok/s':>8} {'':>6} {'':>6} {'s':>7} {'s':>8} {'MiB':>9} {'loss':>7}"
            f" {'1min':>5}")
    lines += [head, unit, "-" * len(head)]
    for name, label in TRAINING_VARIANTS.items():
        v = variants.get(name)
        if v is None:
            continue
        if not v["ok"]:
            lines.append(f"{label:36} FAILED: {(v['errors'] or ['unknown'])[-1]}"[:400])
            continue
        lines.append(
            f"{label:36} {_fmt(v.get('useful_tok_s'), '8.1f')} {_fmt(v.get('seen_tok_s'), '8.1f')}"
            f" {_fmt(v.get('examples_s'), '6.2f')} {_fmt(v.get('tokens_per_example'), '6.1f')}"
            f" {_fmt(v.get('train_s'), '7.1f')} {_fmt(v.get('process_s'), '8.1f')}"
            f" {_fmt(v.get('peak_rss_mib'), '9.0f')} {_fmt(v.get('final_loss'), '7.4f')}"
            f" {_fmt(v.get('load_before_1min'), '5.2f')}")
        if v.get("tui_cpu_s") is not None:
            lines.append(f"{'   (the dashboard process itself)':36} cpu {v['tui_cpu_s']:.1f} s, "
                         f"peak RSS {_fmt(v.get('tui_peak_rss_mib'), '.0f')} MiB, showed the end "
                         f"{_fmt(v.get('tui_end_latency_s'), '.2f')} s after it was logged")
        if v["ok_repeats"] < v["repeats"]:
            lines.append(f"{'':36} {v['repeats'] - v['ok_repeats']} of {v['repeats']} repeats failed: "
                         f"{v['errors'][-1]}"[:400])
    if ratio_rows or latency_rows:
        lines += ["", f"{'check':48} {'value':>8} {'target':>9}  verdict", "-" * 76]
    for r in ratio_rows:
        value = "n/a" if r["value"] is None else f"{r['value']:.2f}x"
        bound = r.get("target_min", r.get("target_max"))
        target = "-" if bound is None else f"{'>=' if 'target_min' in r else '<='} {bound:g}x"
        lines.append(f"{r['ratio'] + '  ' + r['what']:48} {value:>8} {target:>9}  {r['verdict'] or '-'}")
    for r in latency_rows:
        value = "n/a" if r["median_s"] is None else f"{r['median_s']:.3f} s"
        label = f"{r['label']} (median of {r['n']})"
        lines.append(f"{label:48} {value:>8} {'< ' + format(r['target_max_s'], 'g') + ' s':>9}  "
                     f"{r['verdict'] or 'FAILED'}")
        for failure in r["failures"]:
            lines.append(f"    {failure}"[:300])
    return "\n".join(lines)
