"""llama.cpp's runtime (``llama-cpp-python``): is it here, does this export need it, install it.

pip builds llama-cpp-python from source (llama.cpp's C++ through cmake: about 10 minutes of
every core the first time; pip caches the wheel, so a later install takes seconds). That is
why it is not part of the install (``make run`` must reach the wizard in minutes) and comes
when an export first needs it:

* q4_k_m / q5_k_m: llama.cpp's quantizer (unless a ``llama-quantize`` program is on PATH);
* the proof that llama.cpp loads the GGUF and answers the probe prompts like the merged model.

f16, bf16 and q8_0 GGUFs come from llama.cpp's converter, a pure Python package that is always
installed, so those exports work without it (the llama.cpp proof is then skipped, and says so).

:func:`install` runs pip in the running interpreter's environment, so the ``import llama_cpp``
that follows finds what it installed; pip's lines go to a log and become progress messages;
a failure is one :class:`CockpitError` line.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from cockpit.errors import CockpitError, exception_line

log = logging.getLogger(__name__)

LLAMA_CPP_PIN = "llama-cpp-python==0.3.36"
BUILD_TIME = "about 10 minutes, once"
INSTALL_COMMAND = "llm-cockpit export --install-runtime"
# A build tuned to this CPU (-march=native) dies with "illegal instruction" on another one, and
# pip's wheel cache hands the wheel to every later install (another venv, a container): build
# for any CPU of the architecture. A CMAKE_ARGS of one's own (e.g. -DGGML_CUDA=on) wins.
DEFAULT_CMAKE_ARGS = "-DGGML_NATIVE=OFF"
K_QUANTS = ("q4_k_m", "q5_k_m")

Say = Callable[[str, float | None], None]


def import_problem() -> str | None:
    """None when ``llama_cpp`` imports, else why not (exception type and message)."""
    try:
        import llama_cpp  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or its native library failing to load
        return f"{type(exc).__name__}: {exception_line(exc, 160)}"
    return None


def library_missing() -> str | None:
    """None when llama-cpp-python is usable, else one line saying so and how to get it."""
    problem = import_problem()
    if problem is None:
        return None
    return f"llama-cpp-python is not importable ({problem}); install it with: {INSTALL_COMMAND}"


def installed() -> bool:
    """Whether llama-cpp-python looks installed, without loading its native library (cheap
    enough for a screen to ask while it draws)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError, AttributeError):  # a stand-in in sys.modules (None: import blocked)
        return sys.modules.get("llama_cpp") is not None


def quantize_program() -> str | None:
    """A ``llama-quantize`` program on PATH, if any."""
    exe = shutil.which("llama-quantize") or shutil.which("quantize")
    if exe and os.path.basename(exe) in ("llama-quantize", "quantize") and os.access(exe, os.X_OK):
        return exe
    return None


@dataclass
class RuntimeNeed:
    """What one export would lose without llama.cpp's runtime."""

    quant: str
    quantizer_missing: bool  # a K-quant, and neither llama-quantize nor the library: it cannot run
    proof_skipped: bool  # the llama.cpp proof would be skipped

    @property
    def install_helps(self) -> bool:
        """Installing llama-cpp-python would change what this export does."""
        return self.quantizer_missing or self.proof_skipped

    def explain(self) -> str:
        """One line for a person: why the runtime is wanted and what installing costs."""
        if self.quantizer_missing:
            return (f"--quant {self.quant} needs llama.cpp's quantizer, which comes with llama-cpp-python "
                    f"(not installed here); pip builds it from source: {BUILD_TIME}.")
        if self.proof_skipped:
            return ("Without llama-cpp-python the export still writes the GGUF and the Modelfile, but skips "
                    f"the proof that llama.cpp answers like the merged model; installing it: {BUILD_TIME}.")
        return "llama.cpp's runtime is installed."

    def short(self) -> str:
        """The same in a few words, for a line on a screen."""
        if self.quantizer_missing:
            return f"{self.quant} needs llama.cpp's quantizer: llama-cpp-python, not installed here"
        if self.proof_skipped:
            return "llama-cpp-python is not installed: the llama.cpp proof will be skipped"
        return "llama.cpp's runtime is installed"


def need_for(quant: str, verify: bool, *, library: bool | None = None, program: bool | None = None) -> RuntimeNeed:
    """What an export in ``quant`` (with the proof when ``verify``) needs from llama.cpp's runtime.

    ``library`` / ``program``: whether llama-cpp-python imports and a llama-quantize program is on
    PATH (looked up when None).
    """
    have_library = (import_problem() is None) if library is None else library
    have_program = (quantize_program() is not None) if program is None else program
    return RuntimeNeed(quant=quant, quantizer_missing=quant in K_QUANTS and not (have_library or have_program),
                       proof_skipped=verify and not have_library)


def missing_quantizer_error(quant: str) -> CockpitError:
    """The one line for a K-quant export that cannot run here and was not allowed to install."""
    return CockpitError(
        f"--quant {quant} needs llama.cpp's quantizer: neither llama-quantize (on PATH) nor llama-cpp-python "
        "is installed",
        f"add --install-runtime to install llama-cpp-python first (pip builds llama.cpp from source, {BUILD_TIME}), "
        f"or run {INSTALL_COMMAND} (or make llama) ahead of time; or export --quant q8_0, which needs neither")


def proof_skipped_note() -> str:
    """What the report says when the llama.cpp proof was skipped, and how to get it."""
    return ("llama.cpp proof skipped: llama-cpp-python is not installed -> export again with --install-runtime "
            f"to install it first (pip builds llama.cpp, {BUILD_TIME}), or run {INSTALL_COMMAND} (or make llama)")


def install_command(pin: str = LLAMA_CPP_PIN) -> list[str]:
    """pip of *this* interpreter (``sys.executable -m pip``): the environment the export imports
    from next. ``--verbose`` makes pip pass the build's own lines through (cmake's ``[ 42%]``),
    which are the only sign of life during a 10-minute build."""
    return [sys.executable, "-m", "pip", "install", "--verbose", "--progress-bar", "off", "--no-input", pin]


def install_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment pip runs in: the build setting, unbuffered lines."""
    env = dict(os.environ if base is None else base)
    env.setdefault("CMAKE_ARGS", DEFAULT_CMAKE_ARGS)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


# The build's progress: Makefiles print "[ 42%] Building ...", Ninja (what scikit-build-core
# picks when it can) prints "[17/254] Building ...".
_CMAKE_PERCENT = re.compile(r"^\[\s*(\d{1,3})%\]")
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")
_NETWORK = ("No matching distribution found", "Could not find a version that satisfies", "NewConnectionError",
            "Failed to establish a new connection", "Temporary failure in name resolution",
            "Name or service not known", "Network is unreachable", "ConnectTimeoutError", "ReadTimeoutError",
            "Connection refused", "ProxyError", "Max retries exceeded")
# What says most about a failed build comes first: cmake's own error, then the compiler's.
_BUILD = ("CMake Error", "CMAKE_CXX_COMPILER", "CMAKE_C_COMPILER", "ninja: build stopped", "error: ",
          "Failed building wheel", "Failed to build")


class _PipWatcher:
    """Turns pip's lines into progress messages and, at the end, into the reason it failed."""

    def __init__(self, say: Say, pin: str) -> None:
        self.say = say
        self.pin = pin
        self.percent = -1
        self.network: str | None = None
        self.build: dict[int, str] = {}
        self.last_error: str | None = None
        self.no_pip = False
        self.tail: list[str] = []

    def line(self, raw: str) -> None:
        line = raw.strip()  # pip indents what it passes through from the build
        self.tail = (self.tail + [line])[-30:]
        if "No module named pip" in line:
            self.no_pip = True
        if self.network is None and any(k in line for k in _NETWORK):
            self.network = line
        if "warning" not in line.lower():
            for rank, key in enumerate(_BUILD):
                if key in line:
                    self.build.setdefault(rank, line)
                    break
        if line.startswith("ERROR:"):
            self.last_error = line
        m = _CMAKE_PERCENT.match(line)
        n = None if m else _NINJA_STEP.match(line)
        if m or n:
            pct = min(int(m.group(1)), 100) if m else 100 * int(n.group(1)) // max(int(n.group(2)), 1)
            if pct != self.percent:
                self.percent = pct
                self.say(f"building llama.cpp: {pct}%", 0.05 + 0.85 * pct / 100)
        elif line.startswith("Collecting "):
            self.say(f"looking up {line[len('Collecting '):]} on the package index", 0.0)
        elif line.startswith("Downloading "):
            self.say("downloading " + line.rsplit("/", 1)[-1].removeprefix("Downloading "), 0.02)
        elif line.startswith(("Using cached llama_cpp", "Processing ")) and "llama_cpp_python" in line:
            self.say("using the wheel pip built before (seconds)", 0.5)
        elif line.startswith("Building wheel for llama"):
            self.say(f"building llama.cpp from source ({BUILD_TIME}; pip keeps the wheel for next time)", 0.05)
        elif line.startswith("Installing collected packages"):
            self.say("installing", 0.92)

    def failure(self, rc: int, log_name: str | None) -> CockpitError:
        where = f"; pip's output: {log_name}" if log_name else ""
        again = f"run {INSTALL_COMMAND} again"
        if self.no_pip:
            return CockpitError(f"this Python ({sys.executable}) has no pip, so {self.pin} cannot be installed",
                                f"run: {sys.executable} -m ensurepip, then {again}")
        if self.network:
            return CockpitError(f"could not install {self.pin}: pip could not reach the package index "
                                f"({exception_line(self.network, 160)})",
                                f"connect to the network (or point PIP_INDEX_URL at a reachable index) and {again}"
                                + where)
        if self.build:
            first = self.build[min(self.build)]
            return CockpitError(f"building llama.cpp for {self.pin} failed ({exception_line(first, 160)})",
                                "install a C++ compiler and cmake (Debian/Ubuntu: apt-get install build-essential "
                                f"cmake) and {again}" + where)
        reason = self.last_error or (self.tail[-1] if self.tail else "no output")
        return CockpitError(f"pip could not install {self.pin} (exit {rc}): {exception_line(reason, 160)}",
                            again + where)


def _lines(stream) -> Iterator[str]:
    """Lines of a binary stream as they come; a carriage return ends a line too (progress redraws)."""
    buf = b""
    while True:
        chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
        if not chunk:
            break
        buf += chunk
        *done, buf = re.split(rb"[\r\n]", buf)
        for raw in done:
            text = raw.decode("utf-8", "replace").rstrip()
            if text:
                yield text
    if buf.strip():
        yield buf.decode("utf-8", "replace").rstrip()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def install(say: Say | None = None, log_to: TextIO | None = None, *, pin: str = LLAMA_CPP_PIN,
            command: Sequence[str] | None = None, env: dict[str, str] | None = None) -> str:
    """Install llama-cpp-python into this interpreter's environment; returns its version.

    ``say(message, fraction)`` gets the progress; ``log_to`` every line pip prints.
    ``command`` / ``env`` replace :func:`install_command` / :func:`install_env` (tests run a
    fast fake). Raises :class:`CockpitError` when pip fails or the result does not import.
    """
    say = say or (lambda message, fraction: None)
    cmd = list(command) if command is not None else install_command(pin)
    log_name = getattr(log_to, "name", None) if log_to is not None else None
    log.info("installing llama.cpp's runtime: %s", " ".join(cmd))
    say(f"installing {pin} with pip: seconds from pip's cache, else pip builds llama.cpp ({BUILD_TIME})", 0.0)
    watcher = _PipWatcher(say, pin)
    try:
        # Its own process group: a stop must end the compilers pip starts, not pip alone.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env if env is not None else install_env(), start_new_session=True)
    except OSError as exc:
        raise CockpitError(f"could not start pip to install {pin}: {exc}",
                           f"install it by hand: {sys.executable} -m pip install {pin}") from exc
    assert proc.stdout is not None
    try:
        for line in _lines(proc.stdout):
            if log_to is not None:
                log_to.write(line + "\n")
                log_to.flush()
            watcher.line(line)
    except BaseException:  # Ctrl+C, or the TUI's Close (SIGTERM, turned into SystemExit by the CLI)
        _kill_group(proc)  # no pip or compiler left building in the background
        raise
    rc = proc.wait()
    if rc != 0:
        raise watcher.failure(rc, log_name)
    importlib.invalidate_caches()  # the new package must be found by this very process
    problem = import_problem()
    if problem is not None:
        raise CockpitError(f"{pin} was installed but does not load ({problem})",
                           f"reinstall it: {sys.executable} -m pip install --force-reinstall {pin}")
    import llama_cpp

    version = str(getattr(llama_cpp, "__version__", "?"))
    say(f"llama-cpp-python {version} is installed", 1.0)
    return version
