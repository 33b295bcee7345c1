"""One interface over the three ways to run the tracker network, chosen by name.

    backend = create_backend("auto", model_path, device="cuda", precision="fp16",
                             fallback=["onnxruntime", "torch"])
    feats = backend.encode(images)                 # (6, 3, H, W) float32 -> opaque handle
    outputs = backend.decode(feats, img2lidar, slots)   # -> DecoderOutputs for the QueryTracker
    for outputs in backend.decode_layers(feats, img2lidar, slots):  # layer by layer: early exit
        ...

`model` is a checkpoint (.pt) or an export folder (`syncl export`). The torch
backend needs a checkpoint; onnxruntime and TensorRT take either and export a
checkpoint on the fly into the cache folder. When the requested backend cannot
start (no TensorRT, no CUDA, a failed engine build), the next name in
`fallback` is tried, and the log says which backend runs and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from syncl_ros.inference.backend import (
    BACKENDS,
    PRECISIONS,
    Backend,
    BackendRequest,
    BackendUnavailable,
    default_cache_dir,
    is_cuda,
)

LOG = logging.getLogger("syncl_ros.inference")


def auto_order(device: str) -> list[str]:
    """'auto': TensorRT first on a GPU; on a CPU onnxruntime (faster than torch eager), then torch."""
    return list(BACKENDS) if is_cuda(device) else ["onnxruntime", "torch"]


Factory = Callable[[BackendRequest], Backend]


def _torch_factory(req: BackendRequest) -> Backend:
    from syncl_ros.inference.torch_backend import open_torch_backend

    return open_torch_backend(req)


def _onnxruntime_factory(req: BackendRequest) -> Backend:
    from syncl_ros.inference.onnxruntime_backend import open_onnxruntime_backend

    return open_onnxruntime_backend(req)


def _tensorrt_factory(req: BackendRequest) -> Backend:
    from syncl_ros.inference.tensorrt_backend import open_tensorrt_backend

    return open_tensorrt_backend(req)


FACTORIES: dict[str, Factory] = {
    "torch": _torch_factory,
    "onnxruntime": _onnxruntime_factory,
    "tensorrt": _tensorrt_factory,
}


def candidate_order(name: str, device: str, fallback: Sequence[str]) -> list[str]:
    """The backends to try, in order, without repeats."""
    for n in (name, *fallback):
        if n != "auto" and n not in BACKENDS:
            raise ValueError(f"unknown backend {n!r} (auto, {', '.join(BACKENDS)})")
    first = auto_order(device) if name == "auto" else [name]
    order: list[str] = []
    for n in (*first, *fallback):
        for m in auto_order(device) if n == "auto" else [n]:
            if m not in order:
                order.append(m)
    return order


def create_backend(
    name: str,
    model: str | Path,
    device: str = "cpu",
    precision: str = "fp32",
    fallback: Sequence[str] = (),
    cache_dir: str | Path | None = None,
    factories: dict[str, Factory] | None = None,
    **options: Any,
) -> Backend:
    """The first backend of [name, *fallback] that starts; see the module docstring.

    options go to the backend (torch: cuda_graphs; onnxruntime: threads; tensorrt: workspace_mb;
    onnxruntime and tensorrt: layers, True to ready the per-layer decoder graphs of early exit now).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} ({', '.join(PRECISIONS)})")
    model = Path(model)
    if not model.exists():
        raise FileNotFoundError(f"no model at {model} (a checkpoint or an export folder)")
    req = BackendRequest(
        model, device, precision, Path(cache_dir) if cache_dir else default_cache_dir(), dict(options)
    )
    table = factories or FACTORIES
    reasons: list[str] = []
    for candidate in candidate_order(name, device, fallback):
        try:
            backend = table[candidate](req)
        except BackendUnavailable as err:
            reasons.append(f"{candidate}: {err}")
            LOG.warning("backend %s unavailable: %s", candidate, err)
            continue
        backend.selection = [*reasons, f"using {candidate} on {backend.device} ({backend.precision})"]
        if reasons:
            LOG.warning("using backend %s after fallback (%s)", candidate, "; ".join(reasons))
        else:
            LOG.info("using backend %s on %s (%s)", candidate, backend.device, backend.precision)
        return backend
    raise BackendUnavailable("no backend could start: " + "; ".join(reasons))
