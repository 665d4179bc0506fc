"""Registering the exported GGUF with Ollama.

Three ways, tried in order:

1. the ``ollama`` program on PATH: ``ollama create NAME -f Modelfile``;
2. ``OLLAMA_HOST`` naming a reachable server (another machine, a container): the HTTP
   API - upload the GGUF as a blob addressed by its sha256 (``HEAD`` then ``POST
   /api/blobs/sha256:<digest>``), then ``POST /api/create`` with the template, system
   prompt and stop parameters;
3. neither: nothing is registered and the exact command to run is returned.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cockpit.errors import CockpitError
from cockpit.export.modelfile import ModelfileSpec

DEFAULT_PORT = 11434
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
NAME_HELP = ("use letters, digits, '_', '-' and '.', optionally a namespace and a tag "
             "(like dsl-helper, me/dsl-helper or dsl-helper:q8), at most 128 characters")

Say = Callable[[str, float | None], None]


def validate_name(name: str) -> str:
    """Return ``name`` when Ollama accepts it as ``[namespace/]model[:tag]``, else raise."""
    bad = CockpitError(f"{name!r} is not a valid Ollama model name", NAME_HELP)
    if not name or len(name) > 128 or ".." in name:
        raise bad
    rest, _, tag = name.partition(":")
    if ":" in tag or (name.endswith(":") or (tag and not _PART.match(tag))):
        raise bad
    parts = rest.split("/")
    if len(parts) > 2 or not _PART.match(parts[-1]) or (len(parts) == 2 and not _NAMESPACE.match(parts[0])):
        raise bad
    return name


@dataclass
class OllamaOutcome:
    """What happened: ``how`` is cli | http | command; ``registered`` tells whether Ollama has it."""

    how: str
    registered: bool
    name: str
    command: str
    message: str
    host: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def create_command(name: str, modelfile: Path) -> str:
    """The shell command that registers the model, quoted for copy and paste."""
    return f"ollama create {shlex.quote(name)} -f {shlex.quote(str(modelfile))}"


def ollama_host() -> str | None:
    """``OLLAMA_HOST`` as a base URL (``http://host:port``), or None when unset."""
    raw = os.environ.get("OLLAMA_HOST", "").strip()
    if not raw:
        return None
    if "://" not in raw:
        raw = "http://" + raw
    url = urllib.parse.urlsplit(raw)
    host = url.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # a server bound to all interfaces is reached locally
        host = "127.0.0.1"
    port = url.port or (443 if url.scheme == "https" else DEFAULT_PORT)
    host_part = f"[{host}]" if ":" in host else host
    return f"{url.scheme}://{host_part}:{port}"


def register(spec: ModelfileSpec, modelfile: Path, name: str, say: Say | None = None) -> OllamaOutcome:
    """Create the Ollama model ``name`` from ``spec`` the best way available here."""
    say = say or (lambda msg, frac: None)
    validate_name(name)
    command = create_command(name, modelfile)
    exe = shutil.which("ollama")
    if exe:
        say("running ollama create", None)
        proc = subprocess.run([exe, "create", name, "-f", str(modelfile)], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise CockpitError(f"ollama create failed (exit {proc.returncode}): {last[0][:300]}",
                               f"is the Ollama server running (ollama serve)? then run: {command}")
        return OllamaOutcome("cli", True, name, command, f"created Ollama model {name} with the ollama program")
    base = ollama_host()
    if base is None:
        return OllamaOutcome("command", False, name, command,
                             "the ollama program is not on PATH and OLLAMA_HOST is not set; "
                             f"install Ollama (https://ollama.com/download) and run: {command}")
    reason = probe(base)
    if reason is not None:
        return OllamaOutcome("command", False, name, command,
                             f"OLLAMA_HOST={base} is not reachable ({reason}); start that server "
                             f"(ollama serve) and run: {command}", host=base)
    create_over_http(base, spec, name, say)
    return OllamaOutcome("http", True, name, command, f"created Ollama model {name} on {base}", host=base)


def _connection(base: str, timeout: float) -> http.client.HTTPConnection:
    url = urllib.parse.urlsplit(base)
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    return cls(url.hostname, url.port, timeout=timeout)


def probe(base: str, timeout: float = 3.0) -> str | None:
    """None when an Ollama server answers at ``base``, else why not (one short phrase)."""
    try:
        conn = _connection(base, timeout)
        conn.request("GET", "/api/version")
        resp = conn.getresponse()
        resp.read()
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return getattr(exc, "strerror", None) or type(exc).__name__
    return None if resp.status == 200 else f"HTTP {resp.status} from /api/version"


def file_sha256(path: Path, say: Say | None = None) -> str:
    """Hex sha256 of a file (Ollama names blobs by it), reporting progress on big files."""
    h = hashlib.sha256()
    size = max(path.stat().st_size, 1)
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            h.update(chunk)
            done += len(chunk)
            if say:
                say(f"hashing {path.name}", done / size)
    return h.hexdigest()


def _request(base: str, method: str, path: str, body=None, headers=None, timeout: float = 600.0):
    try:
        conn = _connection(base, timeout)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        raise CockpitError(f"the Ollama server at {base} stopped answering during {method} {path} "
                           f"({getattr(exc, 'strerror', None) or type(exc).__name__})",
                           "check the server and export again") from exc
    return resp.status, data


def _error_text(data: bytes) -> str:
    try:
        return str(json.loads(data).get("error") or data[:200].decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return data[:200].decode("utf-8", "replace")


def create_over_http(base: str, spec: ModelfileSpec, name: str, say: Say | None = None) -> dict:
    """Upload the GGUF blob (unless the server has it) and create the model; returns the
    server's final status object."""
    say = say or (lambda msg, frac: None)
    gguf = spec.gguf
    digest = "sha256:" + file_sha256(gguf, say)
    status, _ = _request(base, "HEAD", f"/api/blobs/{digest}")
    if status != 200:
        say(f"uploading {gguf.name} to {base}", None)
        with open(gguf, "rb") as fh:
            status, data = _request(base, "POST", f"/api/blobs/{digest}", body=fh,
                                    headers={"Content-Length": str(gguf.stat().st_size),
                                             "Content-Type": "application/octet-stream"})
        if status not in (200, 201):
            raise CockpitError(f"the Ollama server refused the GGUF upload (HTTP {status}: {_error_text(data)})",
                               "check the server's disk space and version")
    payload: dict = {"model": name, "files": {gguf.name: digest}, "stream": False}
    if spec.template is not None:
        payload["template"] = spec.template
    if spec.system:
        payload["system"] = spec.system
    if spec.parameters():
        payload["parameters"] = spec.parameters()
    say(f"creating {name} on {base}", None)
    status, data = _request(base, "POST", "/api/create", body=json.dumps(payload).encode(),
                            headers={"Content-Type": "application/json"})
    if status != 200:
        raise CockpitError(f"the Ollama server could not create {name} (HTTP {status}: {_error_text(data)})",
                           "update Ollama (the files-based create API needs version 0.5.5 or newer)")
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    final = json.loads(lines[-1]) if lines else {}
    if final.get("error") or final.get("status") != "success":
        raise CockpitError(f"the Ollama server could not create {name}: {final.get('error') or final}",
                           "check the server log")
    return final
