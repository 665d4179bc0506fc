"""How much memory ``llm-cockpit data check`` needs for a large file (a benchmark, not a test).

Generates a JSONL file of the given size (chat examples of about 1 KB, a few formats
mixed as a real corpus would be), then runs ``data check`` on it in its own process with
the bundled tokenizer and reports the wall time and the peak RSS (``ru_maxrss`` through
``os.wait4``). The check streams the file: memory must not grow with its size.

    .venv/bin/python -m tests.bench.data_memory --mb 200
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.measure import run_measured

WORDS = ("valve bed water drizzle sensor pump schedule morning evening litre soil dry wet tomato basil "
         "mint seed sprout mist timer zone greenhouse check level low high every day week").split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def record(rng: random.Random, i: int) -> dict:
    q, a = sentence(rng, rng.randint(8, 30)), " ".join(sentence(rng, rng.randint(8, 20)) for _ in range(6))
    kind = i % 3
    if kind == 0:
        return {"prompt": q, "completion": a}
    if kind == 1:
        return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    return {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}


def generate(path: Path, megabytes: float, seed: int = 0) -> int:
    """Write about ``megabytes`` of JSONL; returns the number of lines."""
    rng = random.Random(seed)
    target = int(megabytes * 1e6)
    written = lines = 0
    with path.open("w", encoding="utf-8") as fh:
        while written < target:
            line = json.dumps(record(rng, lines)) + "\n"
            fh.write(line)
            written += len(line.encode())
            lines += 1
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200.0, help="size of the generated file (default 200)")
    parser.add_argument("--model", default=None, help="tokenizer for the check (default: the bundled one; none: skip)")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cockpit-data-bench-") as tmp:
        path = Path(tmp) / "big.jsonl"
        t0 = time.time()
        lines = generate(path, args.mb)
        print(f"generated {path.stat().st_size / 1e6:.0f} MB, {lines:,} lines in {time.time() - t0:.0f} s",
              flush=True)
        argv_check = [sys.executable, "-m", "cockpit.cli.main", "data", "check", str(path), "--examples", "0"]
        if args.model:
            argv_check += ["--model", args.model]
        result = run_measured(argv_check, log_dir=Path(tmp), name="check", timeout=args.timeout)
        summary = (Path(tmp) / "check.stdout").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        for line in summary[-4:]:
            print("  " + line)
        print(json.dumps({"mb": args.mb, "lines": lines, "exit": result.returncode, "wall_s": round(result.wall_s, 1),
                          "peak_rss_mib": result.peak_rss_mib, "cpu_s": result.cpu_s}))
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
