"""llama.cpp's runtime on demand: when an export needs it, the pip command that installs it,
its progress and its failures (with fake, fast commands: the real build takes 10 minutes),
and the CLI's decision to ask, install or refuse."""

from __future__ import annotations

import io
import sys
import textwrap
import tomllib
import types
from pathlib import Path

import pytest

from cockpit.cli import export as cli_export
from cockpit.errors import CockpitError
from cockpit.export import runtime

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("quant", "verify", "library", "program", "quantizer_missing", "proof_skipped"), [
    ("f16", True, True, False, False, False),
    ("q8_0", True, False, False, False, True),     # written by the converter; only the proof is lost
    ("q8_0", False, False, False, False, False),   # --no-verify: nothing is lost
    ("q4_k_m", True, False, False, True, True),    # cannot be made at all
    ("q4_k_m", True, False, True, False, True),    # llama-quantize on PATH makes it; the proof is still lost
    ("q5_k_m", False, True, False, False, False),
])
def test_what_an_export_needs_from_llama_cpp(quant, verify, library, program, quantizer_missing, proof_skipped):
    need = runtime.need_for(quant, verify, library=library, program=program)
    assert (need.quantizer_missing, need.proof_skipped) == (quantizer_missing, proof_skipped)
    assert need.install_helps == (quantizer_missing or proof_skipped)


def test_the_explanations_say_why_and_what_it_costs():
    k = runtime.need_for("q4_k_m", True, library=False, program=False)
    assert k.explain().startswith("--quant q4_k_m needs llama.cpp's quantizer") and "about 10 minutes" in k.explain()
    assert k.short() == "q4_k_m needs llama.cpp's quantizer: llama-cpp-python, not installed here"
    proof = runtime.need_for("f16", True, library=False, program=False)
    assert "still writes the GGUF and the Modelfile" in proof.explain() and "proof" in proof.short()
    err = runtime.missing_quantizer_error("q5_k_m").one_line()
    assert "\n" not in err and "add --install-runtime" in err and "--quant q8_0" in err


def test_the_install_runs_pip_of_this_interpreter_with_the_pinned_version(monkeypatch):
    cmd = runtime.install_command()
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"] and cmd[-1] == "llama-cpp-python==0.3.36"
    assert "--verbose" in cmd  # the build's own [ 42%] lines are the progress
    env = runtime.install_env({"PATH": "/usr/bin"})
    assert env["CMAKE_ARGS"] == "-DGGML_NATIVE=OFF" and env["PYTHONUNBUFFERED"] == "1"
    assert runtime.install_env({"CMAKE_ARGS": "-DGGML_CUDA=on"})["CMAKE_ARGS"] == "-DGGML_CUDA=on"


def test_the_pin_is_the_one_of_the_llama_extra():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["llama"] == [runtime.LLAMA_CPP_PIN]
    assert not any("llama-cpp" in dep for dep in extras["export"])  # not in the run path


def _fake_pip(tmp_path: Path, lines: list[str], rc: int) -> list[str]:
    script = tmp_path / "fake_pip.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        for line in {lines!r}:
            print(line, flush=True)
        sys.exit({rc})
    """))
    return [sys.executable, str(script)]


BUILD = ["Collecting llama-cpp-python==0.3.36",
         "  Downloading llama_cpp_python-0.3.36.tar.gz (50.3 MB)",
         "Building wheels for collected packages: llama-cpp-python",
         "  Building wheel for llama-cpp-python (pyproject.toml): started",
         "  [  5%] Building C object vendor/llama.cpp/ggml/src/CMakeFiles/ggml-base.dir/ggml.c.o",
         "  [ 50%] Building CXX object vendor/llama.cpp/src/CMakeFiles/llama.dir/llama.cpp.o",
         "  [100%] Linking CXX shared library bin/libllama.so",
         "Installing collected packages: llama-cpp-python",
         "Successfully installed llama-cpp-python-0.3.36"]


@pytest.fixture()
def importable(monkeypatch):
    """llama_cpp imports after the (fake) install."""
    monkeypatch.setattr(runtime, "import_problem", lambda: None)
    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(__version__="0.3.36"))


def test_ninja_build_steps_are_progress_too(tmp_path, importable):
    seen: list[str] = []
    lines = ["  [1/4] Building C object ggml.c.o", "  [2/4] Building CXX object llama.cpp.o", "  [4/4] Linking CXX"]
    runtime.install(lambda m, f: seen.append(m), None, command=_fake_pip(tmp_path, lines, 0))
    assert [m for m in seen if m.startswith("building")] == [
        "building llama.cpp: 25%", "building llama.cpp: 50%", "building llama.cpp: 100%"]


def test_the_install_streams_progress_and_logs_every_line(tmp_path, importable):
    seen: list[tuple[str, float | None]] = []
    log = io.StringIO()
    version = runtime.install(lambda m, f: seen.append((m, f)), log, command=_fake_pip(tmp_path, BUILD, 0),
                              env=runtime.install_env())
    assert version == "0.3.36"
    assert log.getvalue().splitlines() == BUILD
    messages = [m for m, _ in seen]
    assert "downloading llama_cpp_python-0.3.36.tar.gz (50.3 MB)" in messages
    assert [m for m in messages if m.startswith("building llama.cpp:")] == [
        "building llama.cpp: 5%", "building llama.cpp: 50%", "building llama.cpp: 100%"]
    fractions = [f for _, f in seen if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert messages[-1] == "llama-cpp-python 0.3.36 is installed"


@pytest.mark.parametrize(("lines", "expected", "advice"), [
    (["Collecting llama-cpp-python==0.3.36",
      "WARNING: Retrying (Retry(total=4...)) after connection broken by 'NewConnectionError(...: Failed to "
      "establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/llama-cpp-python/",
      "ERROR: Could not find a version that satisfies the requirement llama-cpp-python==0.3.36 (from versions: none)",
      "ERROR: No matching distribution found for llama-cpp-python==0.3.36"],
     "could not install llama-cpp-python==0.3.36: pip could not reach the package index", "connect to the network"),
    (BUILD[:4] + ["  CMake Error at CMakeLists.txt:3 (project):",
                  "    No CMAKE_CXX_COMPILER could be found.",
                  "  error: subprocess-exited-with-error",
                  "ERROR: Failed building wheel for llama-cpp-python"],
     "building llama.cpp for llama-cpp-python==0.3.36 failed (CMake Error at CMakeLists.txt:3 (project):)",
     "apt-get install build-essential cmake"),
    (["/usr/bin/python3: No module named pip"], "has no pip", "ensurepip"),
    (["ERROR: Something unexpected"], "pip could not install llama-cpp-python==0.3.36 (exit 1): ERROR: Something",
     "run llm-cockpit export --install-runtime again"),
])
def test_a_failed_install_is_one_line_saying_what_to_do(tmp_path, lines, expected, advice):
    log = open(tmp_path / "pip.log", "w")  # noqa: SIM115 - a named log, as the export hands it over
    with pytest.raises(CockpitError) as err:
        runtime.install(None, log, command=_fake_pip(tmp_path, lines, 1))
    line = err.value.one_line()
    assert "\n" not in line and expected in err.value.message and advice in err.value.advice, line
    if "pip" not in expected or "reach" in expected:
        assert str(tmp_path / "pip.log") in err.value.advice  # where the whole story is


def test_real_pip_without_a_package_index_fails_as_offline(tmp_path, monkeypatch):
    # pip itself, offline (no index, an empty folder of wheels), asked for a version that does not exist:
    # about a second, and the same words pip says when the network is gone.
    cmd = runtime.install_command("llama-cpp-python==0.0.0.dev0") + ["--no-index", "--find-links", str(tmp_path)]
    env = runtime.install_env()
    for key in [k for k in env if k.startswith("PIP_")]:
        env.pop(key)
    env["PIP_CONFIG_FILE"] = "/dev/null"
    with pytest.raises(CockpitError, match="pip could not reach the package index"):
        runtime.install(None, None, command=cmd, env=env)


def test_a_package_that_installs_but_does_not_load_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "import_problem", lambda: "OSError: libllama.so: cannot open shared object file")
    with pytest.raises(CockpitError, match="was installed but does not load .*libllama.so"):
        runtime.install(None, None, command=_fake_pip(tmp_path, BUILD[-1:], 0))


# -- the CLI's decision --------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _args(**kw):
    values = dict(install_runtime=False, target="gguf", dry_run=False, quant="q4_k_m", no_verify=False, json=False)
    values.update(kw)
    return types.SimpleNamespace(**values)


@pytest.fixture()
def no_quantizer(monkeypatch):
    monkeypatch.setattr(runtime, "import_problem", lambda: "ImportError: test")
    monkeypatch.setattr(runtime, "quantize_program", lambda: None)


def test_the_cli_asks_a_person_at_a_terminal_and_installs_on_yes(monkeypatch, no_quantizer):
    err = _Tty()
    monkeypatch.setattr(sys, "stdin", _Tty("y\n"))
    monkeypatch.setattr(sys, "stderr", err)
    assert cli_export._wants_install(_args()) is True
    assert "needs llama.cpp's quantizer" in err.getvalue() and err.getvalue().endswith("Install it now? [y/N] ")
    monkeypatch.setattr(sys, "stdin", _Tty("\n"))  # Enter alone: no
    assert cli_export._wants_install(_args()) is False


def test_the_cli_never_asks_without_a_terminal_or_when_nothing_is_missing(monkeypatch, no_quantizer):
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # a pipe: a yes there was never typed by a person
    assert cli_export._wants_install(_args()) is False
    monkeypatch.setattr(sys, "stdin", _Tty("y\n"))
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert cli_export._wants_install(_args(json=True)) is False
    assert cli_export._wants_install(_args(quant="q8_0")) is False  # only the proof is lost: no question
    assert cli_export._wants_install(_args(dry_run=True)) is False
    assert cli_export._wants_install(_args(install_runtime=True, quant="f16")) is True  # asked for


def test_progress_lines_one_per_stage_in_a_pipe_updated_in_place_on_a_terminal():
    from cockpit.export.pipeline import ExportProgress

    reports = [ExportProgress("install", "looking up", 0.0), ExportProgress("install", "building llama.cpp: 5%", 0.1),
               ExportProgress("install", "building llama.cpp: 50%", 0.2), ExportProgress("merge", "loading", 0.4)]
    pipe = io.StringIO()
    printer = cli_export._ProgressPrinter(pipe)
    for r in reports:
        printer(r)
    assert pipe.getvalue().splitlines() == ["[  0%] install llama.cpp: looking up", "[ 40%] merge: loading"]
    chatty = io.StringIO()
    printer = cli_export._ProgressPrinter(chatty, quiet_s=0)  # a pipe still hears from a long stage
    for r in reports:
        printer(r)
    assert len(chatty.getvalue().splitlines()) == 4
    tty = _Tty()
    printer = cli_export._ProgressPrinter(tty)
    for r in reports:
        printer(r)
    printer.close()
    assert tty.getvalue().count("\r\x1b[K") == 2 and tty.getvalue().endswith("[ 40%] merge: loading\n")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has ended; only its parent has not read its exit yet


def test_a_stopped_install_leaves_no_compiler_running(tmp_path):
    import time

    script = tmp_path / "slow_pip.py"
    script.write_text(textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a compiler, say
        print(child.pid, flush=True)
        print("Collecting llama-cpp-python==0.3.36", flush=True)
        time.sleep(60)
    """))

    def say(message, fraction):
        if message.startswith("looking up"):
            raise KeyboardInterrupt  # Ctrl+C, or the CLI's SIGTERM handler, while pip builds

    log = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        runtime.install(say, log, command=[sys.executable, str(script)])
    child = int(log.getvalue().split()[0])
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
