"""A small Hugging Face Hub for tests: the endpoints ``huggingface_hub`` calls, on 127.0.0.1.

The real client is pointed at it with ``HF_ENDPOINT``.  It answers

- ``GET /api/models/<repo>[/revision/<rev>]`` — model info with ``sha`` and ``siblings``
  (sizes, blob ids and LFS data when asked with ``blobs=True``);
- ``HEAD|GET /<repo>/resolve/<rev>/<path>`` — small files straight away with ``ETag`` (git
  blob id) and ``X-Repo-Commit``; LFS files (weights, images) with a 302 to a second
  server on another port (the "CDN"), carrying ``X-Linked-Etag`` (sha256),
  ``X-Linked-Size`` and ``X-Repo-Commit`` — the shape the real Hub gives;
- errors the way the Hub spells them: 401 + ``X-Error-Code: RepoNotFound`` for a missing
  or private repo without a token, 401/403 + ``GatedRepo`` for gated files, 404 +
  ``RevisionNotFound`` / ``EntryNotFound``.

Faults for error tests: cut a body halfway (and answer 503 afterwards, as a dropped
network would), or stall a body halfway and deliver SIGINT to the test process (a
user's Ctrl-C).  Every request is logged, so tests can assert what was (not) fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

#: suffixes the Hub stores in LFS (served through the CDN redirect)
LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".png", ".jpg", ".jpeg", ".webp", ".zip")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    """A model repo: commits (sha → files) and refs (branch or tag → sha)."""

    repo_id: str
    private: bool = False
    gated: bool = False
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def commit(self, files: dict[str, bytes], *, ref: str = "main") -> str:
        """Record a new commit of ``files`` (the whole tree) and move ``ref`` to it."""
        digest = hashlib.sha1(repr((self.repo_id, len(self.commits), sorted(files.items()))).encode())
        sha = digest.hexdigest()
        self.commits[sha] = dict(files)
        self.refs[ref] = sha
        return sha

    def resolve(self, rev: str) -> str | None:
        if rev in self.refs:
            return self.refs[rev]
        return rev if rev in self.commits else None


@dataclass
class Fault:
    """What goes wrong the first time a file's body is sent, after ``after`` bytes:
    ``cut`` (connection closed, then 503 — the network stays down), ``drop`` (connection
    closed once, then served again, ranges included), ``stall`` (Ctrl-C arrives)."""

    kind: str
    after: int
    fired: bool = False


class FakeHub:
    """The server pair and its state; use as a context manager."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.tokens: set[str] = set()  # tokens that may read private and gated repos
        self.faults: dict[str, Fault] = {}  # repo file path -> fault
        self.requests: list[tuple[str, str]] = []
        self.sent: list[str] = []  # repo paths whose bodies were sent (direct or through the CDN)
        self.release = threading.Event()  # frees a stalled body
        self._blobs: dict[str, tuple[str, bytes]] = {}  # sha256 -> (repo path, data), for the CDN
        self._lock = threading.Lock()
        self.api = _Server(self, cdn=False)
        self.cdn = _Server(self, cdn=True)

    # --- set-up ------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: dict[str, bytes], **kwargs) -> FakeRepo:
        repo = FakeRepo(repo_id, **kwargs)
        repo.commit(files)
        self.repos[repo_id] = repo
        return repo

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.api.server_port}"

    def fetched(self, suffix: str = "") -> list[str]:
        """Repo paths of the file bodies sent, optionally only those ending with ``suffix``."""
        return [p for p in self.sent if p.endswith(suffix)]

    def __enter__(self) -> FakeHub:
        for server in (self.api, self.cdn):
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        for server in (self.api, self.cdn):
            server.shutdown()
            server.server_close()

    # --- answers -----------------------------------------------------------------

    def model_info(self, h: _Handler, repo_id: str, rev: str, blobs: bool) -> None:
        repo = self._readable_repo(h, repo_id)
        if repo is None:
            return
        sha = repo.resolve(rev)
        if sha is None:
            return h.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        siblings = []
        for path, data in sorted(repo.commits[sha].items()):
            item: dict = {"rfilename": path}
            if blobs:
                item.update(size=len(data), blobId=git_blob_id(data))
                if path.endswith(LFS_SUFFIXES):
                    item["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                   "pointerSize": 134}
            siblings.append(item)
        body = {
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": repo_id.split("/")[0], "sha": sha, "private": repo.private,
            "gated": "manual" if repo.gated else False, "disabled": False, "tags": repo.tags,
            "pipeline_tag": repo.pipeline_tag, "siblings": siblings,
            "lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2024-06-01T00:00:00.000Z",
        }
        h.send_json(body)

    def resolve(self, h: _Handler, repo_id: str, rev: str, path: str, head: bool) -> None:
        repo = self._readable_repo(h, repo_id)
        if repo is None:
            return
        sha = repo.resolve(rev)
        if sha is None:
            return h.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        if repo.gated and not h.authorized():
            status = 403 if h.token() else 401
            return h.error(status, "GatedRepo", f"Access to model {repo_id} is restricted. You must have "
                           "access to it and be authenticated to access it. Please log in.")
        data = repo.commits[sha].get(path)
        if data is None:
            return h.error(404, "EntryNotFound", f"{path} does not exist on \"{rev}\"",
                           extra={"X-Repo-Commit": sha})
        if path.endswith(LFS_SUFFIXES):
            digest = hashlib.sha256(data).hexdigest()
            with self._lock:
                self._blobs[digest] = (path, data)
            cdn = f"http://127.0.0.1:{self.cdn.server_port}/cdn/{digest}?name={path.rsplit('/', 1)[-1]}"
            h.send_response(302)
            for key, value in {"Location": cdn, "X-Repo-Commit": sha, "X-Linked-Etag": f'"{digest}"',
                               "X-Linked-Size": str(len(data)), "ETag": f'"{git_blob_id(data)}"',
                               "Content-Length": "0"}.items():
                h.send_header(key, value)
            h.end_headers()
            return
        h.send_body(data, head, {"ETag": f'"{git_blob_id(data)}"', "X-Repo-Commit": sha}, fault_key=path)

    def blob(self, h: _Handler, digest: str, head: bool) -> None:
        found = self._blobs.get(digest)
        if found is None:
            return h.error(404, None, "no such blob")
        path, data = found
        h.send_body(data, head, {"ETag": f'"{digest}"'}, fault_key=path)

    def _readable_repo(self, h: _Handler, repo_id: str) -> FakeRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not h.authorized()):
            status = 404 if h.token() else 401
            h.error(status, "RepoNotFound", "Repository not found")
            return None
        return repo


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: FakeHub, *, cdn: bool):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self.is_cdn = cdn

    def handle_error(self, request, client_address) -> None:
        """A client hanging up mid-answer is part of the tests, not a server failure."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


_API = re.compile(r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)??)(?:/revision/(?P<rev>[^/]+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, head: bool) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        path = unquote(url.path)
        hub.requests.append((self.command, path))
        if self.server.is_cdn:
            match = re.match(r"^/cdn/([0-9a-f]{64})$", path)
            return hub.blob(self, match.group(1), head) if match else self.error(404, None, "not found")
        match = _API.match(url.path)
        if match and not head:
            blobs = parse_qs(url.query).get("blobs", ["false"])[0].lower() == "true"
            return hub.model_info(self, unquote(match["repo"]), unquote(match["rev"] or "main"), blobs)
        match = _RESOLVE.match(url.path)
        if match:
            return hub.resolve(self, unquote(match["repo"]), unquote(match["rev"]), unquote(match["path"]),
                               head)
        self.error(404, None, "not found")

    # --- helpers ---------------------------------------------------------------------

    def token(self) -> str | None:
        auth = self.headers.get("authorization") or ""
        return auth[7:] if auth.lower().startswith("bearer ") else None

    def authorized(self) -> bool:
        return self.token() in self.server.hub.tokens

    def error(self, status: int, code: str | None, message: str, extra: dict | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, data: object) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_body(self, data: bytes, head: bool, headers: dict[str, str], fault_key: str) -> None:
        fault = self.server.hub.faults.get(fault_key)
        if fault is not None and fault.kind == "cut" and fault.fired and not head:
            return self.error(503, None, "service unavailable")  # the network stays down
        start = 0
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if match and not head:
            start = min(int(match.group(1)), len(data))
        self.send_response(206 if start else 200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if head:
            return
        self.server.hub.sent.append(fault_key)
        if fault is None or fault.fired:
            self.wfile.write(data[start:])
            return
        fault.fired = True
        self.wfile.write(data[start:start + fault.after])
        self.wfile.flush()
        if fault.kind == "stall":
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C mid-download
            self.server.hub.release.wait(10)
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may have hung up first (Ctrl-C)
            self.connection.shutdown(2)


# --- repo contents, built by code ---------------------------------------------------------


def file_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    """A safetensors file written by lutnav's writer, as bytes (for a repo's file table)."""
    import tempfile
    from pathlib import Path

    from catalog.files.safetensors_writer import write_safetensors

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "f.safetensors")
        write_safetensors(path, tensors, metadata, fsync=False)
        return path.read_bytes()


def lora_bytes(family: str = "sd1", rank: int = 2, metadata: dict | None = None, seed: int = 0) -> bytes:
    """A real-shaped kohya LoRA of ``family`` (text-encoder and a few UNet modules: small)."""
    import random

    from lutnav.sample_loras import lora_modules, lora_tensors
    from catalog.files.safetensors_writer import encode_floats

    modules = lora_modules(family, style="kohya")
    unet = [m for m in modules if "attn2_to_k" in m.name or "attn2_to_v" in m.name][:4]
    te = [m for m in modules if "lora_te" in m.name][:4]
    rng = random.Random(seed)
    tensors = {}
    for name, (dtype, shape) in lora_tensors(unet + te, rank, rank / 2).items():
        count = 1
        for dim in shape:
            count *= dim
        values = [rank / 2] if name.endswith(".alpha") else [rng.gauss(0, 0.05) for _ in range(count)]
        tensors[name] = (dtype, shape, encode_floats(values, dtype))
    return file_bytes(tensors, metadata)


def peft_files(prefix: str = "", rank: int = 2) -> dict[str, bytes]:
    """A PEFT LLM adapter folder: adapter_config.json + adapter_model.safetensors."""
    from lutnav.sample_loras import LLMShape, lora_modules, lora_tensors

    shape = LLMShape(hidden=64, intermediate=128, layers=2, kv_width=32)
    modules = lora_modules("llm", style="peft-llm", llm=shape)[:8]
    tensors = {n: (d, s, None) for n, (d, s) in lora_tensors(modules, rank, None).items()}
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": rank * 2,
              "base_model_name_or_path": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
              "target_modules": ["q_proj", "v_proj"]}
    return {prefix + "adapter_config.json": json.dumps(config).encode(),
            prefix + "adapter_model.safetensors": file_bytes(tensors)}


def checkpoint_bytes() -> bytes:
    """A (tiny) full SD checkpoint: the LDM names of a base model, no LoRA pairs."""
    root = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0."
    return file_bytes({f"{root}{p}.weight": ("F16", [16, 16], None)
                       for p in ("attn1.to_q", "attn1.to_k", "attn2.to_k", "attn2.to_v")})


def embedding_bytes() -> bytes:
    return file_bytes({"emb_params": ("F32", [2, 768], None)})


def random_tensor_bytes() -> bytes:
    return file_bytes({"encoder.weight": ("F32", [4, 4], None), "decoder.bias": ("F32", [4], None)})


def png_bytes(seed: int = 0) -> bytes:
    """A real 2x2 PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([seed % 256, 100, 200] * 2) for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def readme(meta: dict, body: str = "# A LoRA\n\nIt paints things.\n") -> bytes:
    """A model card: YAML front matter (JSON is valid YAML) and a markdown body."""
    import yaml

    return ("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body).encode()


# --- helpers shared by the pull tests ------------------------------------------------------


@contextmanager
def serve_hub(tmp_path, monkeypatch) -> Iterator[FakeHub]:
    """A running FakeHub with the real client pointed at it and an empty HF cache."""
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE"):
            monkeypatch.delenv(name, raising=False)
        yield server


def new_library(tmp_path):
    root = tmp_path / "loras"
    root.mkdir()
    return root


def run(root, *args: str, ok: bool = True, **kwargs):
    from click.testing import CliRunner

    from lutnav.cli import cli

    result = CliRunner().invoke(cli, ["--library", str(root), *args], **kwargs)
    if ok:
        import traceback

        detail = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
        assert result.exit_code == 0, result.output + detail
    return result


def tree(root) -> list[str]:
    """Everything in the library outside ``.lutnav`` (what a user would see)."""
    from pathlib import Path

    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*")
                  if ".lutnav" not in p.relative_to(root).parts)


def assert_refused(result, root, *needles: str) -> str:
    """One readable line, a non-zero exit, no traceback, and nothing left behind."""
    from pathlib import Path

    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code != 0, result.output
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    assert tree(root) == []
    assert list(Path(root, ".lutnav").glob("pull-*")) == []
    return lines[0]
