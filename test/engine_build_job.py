"""`syncl build-engine` without TensorRT, for the crash-safety test.

TensorRT cannot run on the test machines, so its builder is replaced by a
function that returns engine-sized bytes derived from the ONNX graph and the
key; everything around it is the real code: the export of the checkpoint into
the cache, the engine cache's atomic writes and its validation.

    python test/engine_build_job.py CHECKPOINT CACHE_DIR
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from syncl_ros.inference.engine_cache import EngineKey
from syncl_ros.inference.tensorrt_backend import GpuIdentity, build_engines

ORIN = GpuIdentity("NVIDIA Jetson AGX Orin", "8.7", "10.3.0")
ENGINE_BYTES = 8 << 20  # large enough that writing it takes a moment a kill can land in


def stand_in_engine(onnx_path: Path, key: EngineKey) -> bytes:
    """What TensorRT's builder would return, as far as the cache can tell: opaque bytes of the graph."""
    seed = hashlib.sha256(onnx_path.read_bytes() + key.digest().encode()).digest()
    return seed * (ENGINE_BYTES // len(seed))


def main(argv: list[str]) -> int:
    checkpoint, cache_dir = Path(argv[0]), Path(argv[1])
    results = build_engines(checkpoint, "fp16", cache_dir, build=stand_in_engine, identity=lambda _: ORIN)
    for graph, result in results.items():
        print(f"{graph}: {'built' if result.built else 'cached'} -> {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
