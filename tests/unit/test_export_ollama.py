"""Registering with Ollama: name validation, the HTTP API against a real local server written
here (it checks what it receives like Ollama would), an unreachable host, no ollama at all,
and the ollama program path with a stand-in program on PATH."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from cockpit.errors import CockpitError
from cockpit.export import ollama
from cockpit.export.modelfile import build_modelfile


@pytest.mark.parametrize("name", ["dsl", "dsl-helper", "me/dsl_helper", "dsl:q8", "me/dsl.v2:f16-1", "A1"])
def test_valid_names(name):
    assert ollama.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-rf", "a b", "a/b/c", "a:b:c", "dsl:", "x..y", "ns.x/model", "name;rm",
                                  "a" * 129, "model/", "/model", "é"])
def test_invalid_names_say_what_is_allowed(name):
    with pytest.raises(CockpitError) as err:
        ollama.validate_name(name)
    assert "not a valid Ollama model name" in err.value.message and "letters, digits" in err.value.advice


class FakeOllama(BaseHTTPRequestHandler):
    """The blob and create routes of the Ollama API, strict about digests."""

    blobs: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[tuple[str, str, dict | None]]] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, code: int, body: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        self.requests.append(("GET", self.path, None))
        self._reply(200, {"version": "0.9.0"}) if self.path == "/api/version" else self._reply(404, {})

    def do_HEAD(self):
        self.requests.append(("HEAD", self.path, None))
        digest = self.path.rsplit("/", 1)[-1]
        self._reply(200 if digest in self.blobs else 404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/api/blobs/"):
            digest = self.path.rsplit("/", 1)[-1]
            self.requests.append(("POST", self.path, {"bytes": len(body)}))
            if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                return self._reply(400, {"error": "digest mismatch"})
            self.blobs[digest] = body
            return self._reply(201)
        if self.path == "/api/create":
            req = json.loads(body)
            self.requests.append(("POST", self.path, req))
            missing = [d for d in req.get("files", {}).values() if d not in self.blobs]
            if missing:
                return self._reply(400, {"error": f"missing blob {missing[0]}"})
            return self._reply(200, {"status": "success"})
        self._reply(404, {"error": "not found"})


@pytest.fixture
def fake_server():
    FakeOllama.blobs, FakeOllama.requests = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOllama)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def spec(tmp_path):
    gguf = tmp_path / "dsl-f16.gguf"
    gguf.write_bytes(b"GGUF" + os.urandom(100_000))
    chatml = "{{ '<|im_start|>' + m['role'] }}<|im_end|>"
    return build_modelfile(gguf, chatml, ["<|im_end|>"], system_prompt="Answer in Wivel.")


@pytest.fixture
def no_ollama_binary(monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_http_path_uploads_the_blob_then_creates(fake_server, spec, tmp_path, monkeypatch, no_ollama_binary):
    monkeypatch.setenv("OLLAMA_HOST", fake_server)
    outcome = ollama.register(spec, tmp_path / "Modelfile", "dsl-helper")
    assert outcome.how == "http" and outcome.registered and outcome.host == f"http://{fake_server}"
    digest = "sha256:" + hashlib.sha256(spec.gguf.read_bytes()).hexdigest()
    methods = [(m, p) for m, p, _ in FakeOllama.requests]
    assert methods == [("GET", "/api/version"), ("HEAD", f"/api/blobs/{digest}"), ("POST", f"/api/blobs/{digest}"),
                       ("POST", "/api/create")]
    create = FakeOllama.requests[-1][2]
    assert create == {"model": "dsl-helper", "files": {"dsl-f16.gguf": digest}, "stream": False,
                      "template": spec.template, "system": "Answer in Wivel.",
                      "parameters": {"stop": ["<|im_end|>"]}}
    assert FakeOllama.blobs[digest] == spec.gguf.read_bytes()


def test_http_path_skips_a_blob_the_server_has(fake_server, spec, tmp_path, monkeypatch, no_ollama_binary):
    monkeypatch.setenv("OLLAMA_HOST", f"http://{fake_server}")
    ollama.register(spec, tmp_path / "Modelfile", "first")
    FakeOllama.requests.clear()
    ollama.register(spec, tmp_path / "Modelfile", "second")
    assert [m for m, _, _ in FakeOllama.requests] == ["GET", "HEAD", "POST"]
    assert FakeOllama.requests[-1][1] == "/api/create"


def test_unreachable_host_returns_the_command_with_the_reason(spec, tmp_path, monkeypatch, no_ollama_binary):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    outcome = ollama.register(spec, tmp_path / "my dir" / "Modelfile", "dsl")
    assert not outcome.registered and outcome.how == "command"
    assert f"OLLAMA_HOST=http://127.0.0.1:{port} is not reachable" in outcome.message
    assert outcome.command == f"ollama create dsl -f '{tmp_path / 'my dir' / 'Modelfile'}'"
    assert outcome.command in outcome.message


def test_no_binary_and_no_host_prints_the_exact_command(spec, tmp_path, monkeypatch, no_ollama_binary):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    outcome = ollama.register(spec, tmp_path / "Modelfile", "dsl")
    assert (outcome.how, outcome.registered) == ("command", False)
    assert "ollama program is not on PATH and OLLAMA_HOST is not set" in outcome.message
    assert outcome.command == f"ollama create dsl -f {tmp_path / 'Modelfile'}"


def test_invalid_name_is_refused_before_anything_runs(spec, tmp_path, fake_server, monkeypatch, no_ollama_binary):
    monkeypatch.setenv("OLLAMA_HOST", fake_server)
    with pytest.raises(CockpitError, match="not a valid Ollama model name"):
        ollama.register(spec, tmp_path / "Modelfile", "bad name")
    assert FakeOllama.requests == []


def _program(path: Path, script: str) -> None:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_ollama_program_on_path_is_run_with_the_modelfile(spec, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.txt"
    _program(bindir / "ollama", f'echo "$@" > "{log}"\n')
    monkeypatch.setenv("PATH", str(bindir))
    outcome = ollama.register(spec, tmp_path / "Modelfile", "dsl:f16")
    assert (outcome.how, outcome.registered) == ("cli", True)
    assert log.read_text().strip() == f"create dsl:f16 -f {tmp_path / 'Modelfile'}"


def test_ollama_program_failure_is_one_line_with_the_command(spec, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _program(bindir / "ollama", 'echo "Error: could not connect to ollama app, is it running?" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(CockpitError) as err:
        ollama.register(spec, tmp_path / "Modelfile", "dsl")
    assert "could not connect to ollama app" in err.value.message and "ollama serve" in err.value.advice


@pytest.mark.parametrize("raw,url", [("127.0.0.1", "http://127.0.0.1:11434"), ("0.0.0.0:9999", "http://127.0.0.1:9999"),
                                     ("http://box.lan", "http://box.lan:11434"), ("https://h:8443", "https://h:8443")])
def test_ollama_host_forms(raw, url, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", raw)
    assert ollama.ollama_host() == url
