"""A stand-in Hugging Face hub on loopback: local folders served in the hub's API and resolve layout, with large
files throttled so that a download takes a few seconds. Point HF_ENDPOINT (or `huggingface_hub.constants.ENDPOINT`)
at `hub.url`.

What it answers, as the hub does for huggingface_hub 2.4:
* `GET /api/models/OWNER/NAME[/revision/REV]` (with `?blobs=true`: sizes, git blob ids, LFS sha256) -> model info;
* `GET /api/models/OWNER/NAME/tree/REV?recursive=...` -> the file listing;
* `HEAD|GET /OWNER/NAME/resolve/REV/PATH`: small files directly (ETag = git blob id), LFS-sized files (over
  `LFS_FROM` bytes) by a 302 to a "CDN" address on another host name (`localhost` instead of `127.0.0.1`) with
  `X-Linked-Etag` (the sha256) and `X-Linked-Size`, as the hub sends large files to its CDN;
* `GET /cdn/SHA256` with `Range: bytes=N-` -> 206 from byte N, at `bytes_per_s`.
Every request is recorded in `requests` as (method, path), and each CDN request's first byte in `ranges` as
(path, start).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Listings of the real repos of the default models (their file names on the hub and their model_index.json), for
# the choice of files without a download.
SVD_XT_FILES = [
    ".gitattributes", "LICENSE", "README.md", "feature_extractor/preprocessor_config.json",
    "image_encoder/config.json",
    "image_encoder/model.fp16.safetensors", "image_encoder/model.safetensors", "model_index.json", "output_tile.gif",
    "scheduler/scheduler_config.json", "svd_xt.safetensors", "svd_xt_image_decoder.safetensors", "unet/config.json",
    "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
    "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors"]
SVD_XT_INDEX = {"_class_name": "StableVideoDiffusionPipeline",
                "feature_extractor": ["transformers", "CLIPImageProcessor"],
                "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
                "scheduler": ["diffusers", "EulerDiscreteScheduler"],
                "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
                "vae": ["diffusers", "AutoencoderKLTemporalDecoder"]}
SDXL_FILES = [
    ".gitattributes", "01.png", "LICENSE.md", "README.md", "comparison.png", "model_index.json", "pipeline.png",
    "scheduler/scheduler_config.json", "sd_xl_base_1.0.safetensors", "sd_xl_base_1.0_0.9vae.safetensors",
    "sd_xl_offset_example-lora_1.0.safetensors",
    *(f"{folder}/{name}" for folder in ("text_encoder", "text_encoder_2") for name in (
        "config.json", "flax_model.msgpack", "model.fp16.safetensors", "model.onnx", "model.safetensors",
        "openvino_model.bin", "openvino_model.xml")), "text_encoder_2/model.onnx_data",
    *(f"{folder}/{name}" for folder in ("tokenizer", "tokenizer_2") for name in (
        "merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json")),
    *(f"unet/{name}" for name in ("config.json", "diffusion_flax_model.msgpack",
                                  "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors",
                                  "model.onnx", "model.onnx_data", "openvino_model.bin", "openvino_model.xml")),
    *(f"{folder}/{name}" for folder in ("vae", "vae_1_0") for name in (
        "config.json", "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors")),
    "vae/diffusion_flax_model.msgpack", "vae_decoder/config.json", "vae_decoder/model.onnx",
    "vae_encoder/config.json", "vae_encoder/model.onnx"]
SDXL_INDEX = {"_class_name": "StableDiffusionXLPipeline", "force_zeros_for_empty_prompt": True,
              "add_watermarker": None, "scheduler": ["diffusers", "EulerDiscreteScheduler"],
              "text_encoder": ["transformers", "CLIPTextModel"],
              "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
              "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
              "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}

RATE = 4_000_000  # bytes/s the tests serve at: the tiny SVD (about 9.5 MB) takes 2-3 s
LFS_FROM = 100_000  # files larger than this are "LFS": served through the CDN redirect, throttled
CHUNK = 16_384


class StandInHub:
    """`with StandInHub({"owner/name": folder, ...}, bytes_per_s=...) as hub:` serves the folders as repos."""

    def __init__(self, repos: dict[str, Path], bytes_per_s: float | None = None) -> None:
        self.repos = {repo_id: self._index(Path(folder)) for repo_id, folder in repos.items()}
        self.bytes_per_s = bytes_per_s
        self.requests: list[tuple[str, str]] = []
        self.ranges: list[tuple[str, int]] = []
        self.drop_once_after: int | None = None  # bytes of a body after which one connection is cut (a bad link)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.cdn = f"http://localhost:{self.server.server_port}/cdn"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def _index(folder: Path) -> dict[str, object]:
        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            files[path.relative_to(folder).as_posix()] = {
                "path": path, "size": len(data), "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                "sha256": hashlib.sha256(data).hexdigest()}
        commit = hashlib.sha1(json.dumps({k: v["oid"] for k, v in files.items()}).encode()).hexdigest()
        return {"sha": commit, "files": files}

    def __enter__(self) -> StandInHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def downloads(self) -> list[str]:
        """The paths of the file bodies sent (GET on resolve or CDN addresses)."""
        return [path for method, path in self.requests if method == "GET" and ("/resolve/" in path or
                                                                                 path.startswith("/cdn/"))]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(body=True)

            def _send(self, status: int, headers: dict[str, str], body: bytes = b"", send_body: bool = True) -> None:
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                if send_body and body and self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, value: object) -> None:
                self._send(200, {"Content-Type": "application/json"}, json.dumps(value).encode())

            def _not_found(self, code: str) -> None:
                self._send(404, {"X-Error-Code": code, "X-Error-Message": f"{code} (stand-in hub)"}, b"{}")

            def _serve(self, body: bool) -> None:
                url = urlsplit(self.path)
                path = unquote(url.path)
                hub.requests.append((self.command, path))
                if path.startswith("/cdn/"):
                    return self._cdn(path[len("/cdn/"):], body)
                api = path.startswith("/api/models/")
                parts = path[len("/api/models/"):].split("/") if api else path.lstrip("/").split("/")
                repo_id = "/".join(parts[:2])
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._not_found("RepoNotFound")
                rest = parts[2:]
                if api and (not rest or rest[0] == "revision"):
                    return self._json({"id": repo_id, "sha": repo["sha"], "siblings": [
                        {"rfilename": name, "size": f["size"], "blobId": f["oid"],
                         **({"lfs": {"sha256": f["sha256"], "size": f["size"], "pointerSize": 134}}
                            if f["size"] > LFS_FROM else {})} for name, f in repo["files"].items()]})
                if api and rest[0] == "tree":
                    return self._json([{"type": "file", "path": name, "size": f["size"], "oid": f["oid"],
                                        **({"lfs": {"oid": f["sha256"], "size": f["size"], "pointerSize": 134}}
                                           if f["size"] > LFS_FROM else {})} for name, f in repo["files"].items()])
                if not api and rest[:1] == ["resolve"]:
                    file = repo["files"].get("/".join(rest[2:]))
                    if file is None:
                        return self._not_found("EntryNotFound")
                    common = {"X-Repo-Commit": repo["sha"], "Accept-Ranges": "bytes"}
                    if file["size"] > LFS_FROM:
                        return self._send(302, {**common, "Location": f"{hub.cdn}/{file['sha256']}",
                                                "X-Linked-Etag": f'"{file["sha256"]}"',
                                                "X-Linked-Size": str(file["size"]), "ETag": f'"{file["oid"]}"'})
                    data = file["path"].read_bytes()
                    self._send(200, {**common, "ETag": f'"{file["oid"]}"', "Content-Length": str(len(data))})
                    return self._throttled(data) if body else None  # throttled like the CDN
                return self._not_found("EntryNotFound")

            def _cdn(self, sha256: str, body: bool) -> None:
                file = next((f for repo in hub.repos.values() for f in repo["files"].values()
                             if f["sha256"] == sha256), None)
                if file is None:
                    return self._not_found("EntryNotFound")
                data = file["path"].read_bytes()
                start = 0
                wanted = self.headers.get("Range", "")
                if wanted.startswith("bytes=") and wanted.endswith("-"):
                    start = int(wanted[len("bytes="):-1])
                hub.ranges.append((f"/cdn/{sha256}", start))
                part = data[start:]
                headers = {"Content-Length": str(len(part)), "ETag": f'"{sha256}"'}
                if start:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self.send_response(206 if start else 200)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if body:
                    self._throttled(part)

            def _throttled(self, data: bytes) -> None:
                try:
                    for offset in range(0, len(data), CHUNK):
                        if hub.drop_once_after is not None and offset >= hub.drop_once_after:
                            hub.drop_once_after = None
                            self.close_connection = True  # fewer bytes than Content-Length said
                            return
                        self.wfile.write(data[offset:offset + CHUNK])
                        if hub.bytes_per_s:
                            time.sleep(min(CHUNK, len(data) - offset) / hub.bytes_per_s)
                except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (a cancel)
                    self.close_connection = True

        return Handler
