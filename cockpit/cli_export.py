"""``export``: a finished run to Ollama, a GGUF file or the Hugging Face Hub."""

from __future__ import annotations

import json
import sys
import time

from cockpit.runs_registry import find_run
_TARGETS = ("ollama", "gguf", "hf")
_QUANTS = ("f16", "bf16", "q8_0", "q4_k_m", "q5_k_m")


def register(sub) -> None:
    """Add the ``export`` sub-command."""
    p = sub.add_parser(
        "export", help="export a finished run to Ollama, a GGUF file or the Hugging Face Hub",
        description="Merge the run's adapter, convert it to GGUF with llama.cpp's converter, write an Ollama "
                    "Modelfile and register it (--to ollama), or stop at the files (--to gguf); then prove the "
                    "GGUF answers the run's probe prompts like the trained model. --to hf uploads the adapter "
                    "(or --merged model) with a model card.")
    p.add_argument("run", nargs="?", default=None, help="run name or path (default: latest)")
    p.add_argument("--to", dest="target", choices=_TARGETS, default="ollama", help="where to export (default ollama)")
    p.add_argument("--quant", choices=_QUANTS, default="f16",
                   help="GGUF type: f16, bf16, q8_0 (converter), q4_k_m, q5_k_m (need llama.cpp's quantizer)")
    p.add_argument("--name", default=None,
                   help="Ollama model name (default from the run's name); for --to hf the repo id OWNER/REPO")
    p.add_argument("--dry-run", action="store_true", help="check and show what would be written, write nothing")
    p.add_argument("--no-verify", action="store_true", help="skip the llama.cpp and transformers checks of the GGUF")
    p.add_argument("--merged", action="store_true", help="--to hf: upload the merged model instead of the adapter")
    p.add_argument("--public", action="store_true", help="--to hf: create a public repository (default private)")
    p.add_argument("--output-dir", default=None,
                   help="look for RUN in this runs directory only (default: every one llm-cockpit knows)")
    p.add_argument("--json", action="store_true", help="print one JSON document with the result")
    p.set_defaults(func=cmd_export)


class _ProgressPrinter:
    """Progress lines on stderr, at most one per second unless the stage changes."""

    def __init__(self) -> None:
        self.stage = None
        self.last = 0.0

    def __call__(self, p) -> None:
        now = time.monotonic()
        if p.stage == self.stage and now - self.last < 1.0 and p.stage != "done":
            return
        self.stage, self.last = p.stage, now
        print(f"[{p.fraction:4.0%}] {p.stage}: {p.message}", file=sys.stderr, flush=True)


def cmd_export(args) -> int:
    """Run the export; progress on stderr, the result (or its JSON) on stdout."""
    from cockpit.export import export_run

    run_dir = find_run(args.run, args.output_dir)
    result = export_run(run_dir, target=args.target, quant=args.quant, name=args.name, dry_run=args.dry_run,
                        progress=None if args.json else _ProgressPrinter(), verify_export=not args.no_verify,
                        merged=args.merged, private=not args.public)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return 0
    _print_result(result)
    return 0


def _bytes(n: int | None) -> str:
    if not n:
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f" ({n / scale:.1f} {unit})"
    return f" ({n} B)"


def _size(path) -> str:
    try:
        return _bytes(path.stat().st_size)
    except (OSError, AttributeError):
        return ""


def _print_result(r) -> None:
    if r.doctor:
        failed = [c for c in r.doctor["checks"] if not c["ok"]]
        print(f"doctor     {'ok' if r.doctor['ok'] else 'FAILED'} ({len(r.doctor['checks'])} checks"
              f"{', ' + str(len(failed)) + ' warnings' if failed else ''})")
        for c in r.doctor["checks"]:
            print(f"  {'ok ' if c['ok'] else ('!! ' if c['level'] == 'error' else 'warn')} {c['name']}: {c['detail']}")
    if r.target == "hf":
        print(f"repository {r.name} ({r.hub['kind']})")
        for f in r.hub["files"]:
            print(f"  {f['path']}{_bytes(f.get('bytes'))}")
        if r.dry_run:
            print("--- README.md (model card) ---")
            print(r.hub["card"])
        else:
            print(f"uploaded   {r.hub.get('url')}")
    elif r.dry_run:
        print("would write:")
        for f in r.planned_files:
            print(f"  {f}")
        print("--- Modelfile ---")
        print(r.modelfile_text, end="")
    else:
        if r.merged_dir:
            print(f"merged     {r.merged_dir}")
        print(f"gguf       {r.gguf}{_size(r.gguf)}")
        print(f"modelfile  {r.modelfile}")
        if r.verify_summary:
            print(f"proof      {r.verify_summary}")
        if r.ollama:
            print(f"ollama     {r.ollama['message']}")
    for w in r.warnings:
        if not (r.ollama and w == r.ollama["message"]):  # already printed above
            print(f"warning: {w}", file=sys.stderr)
    if r.chat_command:
        print(f"chat       {r.chat_command}")
    if r.dry_run:
        print("dry run: nothing was written or uploaded", file=sys.stderr)
