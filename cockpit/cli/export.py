"""``export``: a finished run to Ollama, a GGUF file or the Hugging Face Hub."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import TextIO

from cockpit.export.convert import DEFAULT_QUANT, QUANTS
from cockpit.export.pipeline import TARGETS
from cockpit.run.registry import find_run


def register(sub) -> None:
    """Add the ``export`` sub-command."""
    p = sub.add_parser(
        "export", help="export a finished run to Ollama, a GGUF file or the Hugging Face Hub",
        description="Merge the run's adapter, convert it to GGUF with llama.cpp's converter, write an Ollama "
                    "Modelfile and register it (--to ollama), or stop at the files (--to gguf); then prove the "
                    "GGUF answers the run's probe prompts like the trained model. --to hf uploads the adapter "
                    "(or --merged model) with a model card.")
    p.add_argument("run", nargs="?", default=None,
                   help="run name or path (default: latest; with --install-runtime alone, none: install only)")
    p.add_argument("--to", dest="target", choices=TARGETS, default="ollama", help="where to export (default ollama)")
    p.add_argument("--quant", choices=QUANTS, default=DEFAULT_QUANT,
                   help=f"GGUF type (default {DEFAULT_QUANT}): f16, bf16, q8_0 (converter), q4_k_m, q5_k_m "
                        "(need llama.cpp's quantizer)")
    p.add_argument("--name", default=None,
                   help="Ollama model name (default from the run's name); for --to hf the repo id OWNER/REPO")
    p.add_argument("--dry-run", action="store_true", help="check and show what would be written, write nothing")
    p.add_argument("--no-verify", action="store_true", help="skip the llama.cpp and transformers checks of the GGUF")
    p.add_argument("--install-runtime", action="store_true",
                   help="install llama.cpp's runtime (llama-cpp-python: q4_k_m/q5_k_m and the llama.cpp proof) "
                        "first if it is missing; pip builds it from source, about 10 minutes once. Without RUN: "
                        "install it and stop")
    p.add_argument("--merged", action="store_true", help="--to hf: upload the merged model instead of the adapter")
    p.add_argument("--public", action="store_true", help="--to hf: create a public repository (default private)")
    p.add_argument("--output-dir", default=None,
                   help="look for RUN in this runs directory only (default: every one llm-cockpit knows)")
    p.add_argument("--json", action="store_true", help="print one JSON document with the result")
    p.set_defaults(func=cmd_export)


class _ProgressPrinter:
    """One line on stderr as each stage begins. Within a stage, a terminal sees the line
    updated in place; a pipe (the TUI's export screen, CI) gets an update at most every
    ``quiet_s`` seconds, so a 10-minute build still shows signs of life without a flood.

    The stream is taken when the printer is made: during the export the engine points
    ``sys.stderr`` at the export's log.
    """

    def __init__(self, stream: TextIO | None = None, quiet_s: float = 15.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.quiet_s = quiet_s
        self.stage: str | None = None
        self.last = 0.0
        self.open_line = False  # a terminal line being updated in place

    def __call__(self, p) -> None:
        from cockpit.export.pipeline import STAGE_TITLES

        now = time.monotonic()
        line = f"[{p.fraction:4.0%}] {STAGE_TITLES.get(p.stage, p.stage)}: {p.message}"
        if p.stage != self.stage:
            self.stage, self.last = p.stage, now
            self._write(line, in_place=False)
        elif self.tty:
            self._write(line, in_place=True)
        elif now - self.last >= self.quiet_s:
            self.last = now
            self._write(line, in_place=False)

    def _write(self, line: str, in_place: bool) -> None:
        if in_place:
            self.stream.write("\r\x1b[K" + line)
            self.open_line = True
        else:
            self.stream.write(("\n" if self.open_line else "") + line + ("" if self.tty else "\n"))
            self.open_line = self.tty
        self.stream.flush()

    def close(self) -> None:
        """End a line left open on a terminal."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False


def _interactive(args) -> bool:
    return not args.json and sys.stdin.isatty() and sys.stderr.isatty()


def _ask(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _wants_install(args) -> bool:
    """Whether this export installs llama.cpp's runtime first: asked for (--install-runtime), or
    a K-quant that cannot run without it and a person at the terminal who says yes. Without a
    terminal nobody is asked: the export fails with the line that names --install-runtime."""
    from cockpit.export import runtime

    if args.install_runtime:
        return True
    if args.target == "hf" or args.dry_run or args.quant not in runtime.K_QUANTS:
        return False
    need = runtime.need_for(args.quant, not args.no_verify)
    if not need.quantizer_missing or not _interactive(args):
        return False
    print(need.explain(), file=sys.stderr)
    return _ask("Install it now? [y/N] ")


def _install_only(args) -> int:
    """``export --install-runtime`` without a run: install llama.cpp's runtime and stop."""
    from cockpit.export import runtime
    from cockpit.paths import cache_dir

    problem = runtime.import_problem()
    if problem is None:
        import llama_cpp

        version = str(getattr(llama_cpp, "__version__", "?"))
        print(json.dumps({"llama_cpp": version, "installed_now": False}) if args.json
              else f"llama-cpp-python {version} is already installed")
        return 0
    log_path = cache_dir() / "llama-cpp-install.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    printer = None if args.json else _ProgressPrinter()
    try:
        with open(log_path, "w", encoding="utf-8") as log_file:
            version = runtime.install(None if printer is None else
                                      lambda message, fraction: printer(_Progress("install", message, fraction)),
                                      log_file)
    finally:
        if printer is not None:
            printer.close()
    print(json.dumps({"llama_cpp": version, "installed_now": True, "log": str(log_path)}) if args.json else
          f"llama-cpp-python {version} is installed: exports can make q4_k_m/q5_k_m and prove the GGUF with llama.cpp")
    return 0


class _Progress:
    """An ExportProgress look-alike for the install-only path (no export, no overall fraction)."""

    def __init__(self, stage: str, message: str, fraction: float | None) -> None:
        self.stage, self.message, self.fraction = stage, message, fraction or 0.0


def _stop_on_sigterm() -> None:
    """SIGTERM (the TUI's Close, ``kill``) unwinds like Ctrl+C: the export's children (pip and
    its compilers, the converter) are ended and partial files removed on the way out."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def cmd_export(args) -> int:
    """Run the export; progress on stderr, the result (or its JSON) on stdout."""
    _stop_on_sigterm()
    if args.install_runtime and args.run is None:
        return _install_only(args)
    from cockpit.export import export_run

    run_dir = find_run(args.run, args.output_dir)
    printer = None if args.json else _ProgressPrinter()
    try:
        result = export_run(run_dir, target=args.target, quant=args.quant, name=args.name, dry_run=args.dry_run,
                            progress=printer, verify_export=not args.no_verify, merged=args.merged,
                            private=not args.public, install_runtime=_wants_install(args),
                            echo=bool(getattr(args, "debug", False)))
    finally:
        if printer is not None:
            printer.close()
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
        if r.preflight:
            print(f"preflight  {r.preflight['summary']}")
        if r.llama_cpp_installed:
            print(f"installed  llama-cpp-python {r.llama_cpp_installed}")
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
    if r.log:
        print(f"log        {r.log}")
    if r.chat_command:
        print(f"chat       {r.chat_command}")
    if r.dry_run:
        print("dry run: nothing was written or uploaded", file=sys.stderr)
