"""On-disk cache of built TensorRT engines.

A serialized engine only runs on the GPU model and TensorRT version that built
it, and it bakes in the precision and the exact ONNX graph. So an entry is
keyed by all of them: GPU name, compute capability, TensorRT version,
precision, the graph's ONNX sha256 (and the cache format). Each entry is two
files in the cache folder:

    <graph>-<digest>.engine   the serialized engine
    <graph>-<digest>.json     sidecar: the full key, the engine's sha256 and size

Both are written atomically (temp file + os.replace), the engine first. A
lookup accepts an entry only when the sidecar parses, holds the expected key,
and the engine file's sha256 matches; anything else (a truncated copy, a
half-finished write from a crash, a file from another machine, a digest
collision) is rebuilt; temp files that a killed build left are removed by the
next store. Building is a function handed to the cache, so the
cache logic does not depend on TensorRT being installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from syncl_ros.atomic import atomic_open, remove_stale_partials, write_json_atomic

LOG = logging.getLogger("syncl_ros.inference")

CACHE_FORMAT = "syncl_ros.engine/1"


@dataclass(frozen=True)
class EngineKey:
    graph: str  # "encoder" or "decoder"
    onnx_sha256: str
    precision: str  # "fp32" or "fp16"
    gpu_name: str
    compute_capability: str  # e.g. "8.7" (Orin), "9.0" (H100)
    tensorrt_version: str

    def as_dict(self) -> dict[str, str]:
        return {"format": CACHE_FORMAT, **asdict(self)}

    def digest(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def stem(self) -> str:
        return f"{self.graph}-{self.digest()}"


BuildFn = Callable[[Path, EngineKey], bytes]


@dataclass(frozen=True)
class CacheResult:
    path: Path
    built: bool  # False: served from the cache
    reason: str  # why it was (re)built, or "cached"


class EngineCache:
    """get(onnx, key): the cached engine for key, or a freshly built and stored one."""

    def __init__(self, root: Path, build: BuildFn) -> None:
        self.root = Path(root)
        self.build = build

    def engine_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem}.engine"

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem}.json"

    def check(self, key: EngineKey) -> str | None:
        """None when a valid entry for key exists, else why not."""
        engine, sidecar = self.engine_path(key), self.sidecar_path(key)
        if not engine.is_file() or not sidecar.is_file():
            return "not cached"
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            return "unreadable sidecar"
        if not isinstance(meta, dict) or meta.get("key") != key.as_dict():
            return "sidecar key does not match"
        data = engine.read_bytes()
        if len(data) != meta.get("engine_bytes") or hashlib.sha256(data).hexdigest() != meta.get(
            "engine_sha256"
        ):
            return "engine file corrupt (checksum mismatch)"
        return None

    def get(self, onnx_path: Path, key: EngineKey, rebuild: bool = False) -> CacheResult:
        reason = "rebuild requested" if rebuild else self.check(key)
        if reason is None:
            return CacheResult(self.engine_path(key), built=False, reason="cached")
        LOG.info("building %s engine (%s): %s", key.graph, key.precision, reason)
        data = self.build(Path(onnx_path), key)
        if not data:
            raise RuntimeError(f"the engine builder returned nothing for {onnx_path}")
        self.store(key, data)
        return CacheResult(self.engine_path(key), built=True, reason=reason)

    def store(self, key: EngineKey, data: bytes) -> Path:
        """Write engine, then sidecar; a reader that sees a new engine with an old sidecar rejects it."""
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.root)  # temp files of builds that were killed while writing
        with atomic_open(self.engine_path(key), "wb") as f:
            f.write(data)
        meta = {
            "key": key.as_dict(),
            "engine_sha256": hashlib.sha256(data).hexdigest(),
            "engine_bytes": len(data),
        }
        write_json_atomic(self.sidecar_path(key), meta, indent=2)
        return self.engine_path(key)

    def entries(self) -> list[dict[str, Any]]:
        """Sidecars of every entry in the cache folder (for listing; not validated)."""
        out = []
        for sidecar in sorted(self.root.glob("*.json")):
            try:
                out.append(json.loads(sidecar.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
        return out
