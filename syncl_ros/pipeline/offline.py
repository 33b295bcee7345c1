"""Offline tracking over every scene of a split -> nuScenes tracking results JSON (or, for the
detector alone, detection results).

Runs the node's frame pipeline (:class:`~syncl_ros.pipeline.frame_pipeline.FramePipeline`:
same preprocessing, backend, tracker and early exit), one scene at a time with a fresh tracker
state per scene.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm import tqdm

from syncl_ros import boxes as box_ops
from syncl_ros.atomic import write_json_atomic
from syncl_ros.classes import TRACKING_CLASSES
from syncl_ros.data.frames import Frame, NuScenesFrames
from syncl_ros.experiment import with_tracker_overrides
from syncl_ros.experiment.checkpoint import load_model
from syncl_ros.inference.backend import Backend
from syncl_ros.inference.factory import create_backend
from syncl_ros.inference.torch_backend import TorchBackend
from syncl_ros.model.config import ModelConfig
from syncl_ros.pipeline.dataset_inputs import dataset_frame_inputs
from syncl_ros.pipeline.feature_cache import FeatureCache
from syncl_ros.pipeline.frame_pipeline import FramePipeline
from syncl_ros.pipeline.results import RESULTS_META, detection_box, result_box
from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.tracking.detector_only import DEFAULT_MAX_BOXES, DetectorOnly
from syncl_ros.tracking.early_exit import EarlyExit, early_exit_for
from syncl_ros.tracking.factory import make_tracker
from syncl_ros.tracking.interface import Track, Tracker


class FeatureSource(Protocol):
    """Encoder features of a split's frames by index (e.g. the training's feature cache)."""

    def features(self, index: int) -> torch.Tensor: ...


def result_entry(track: Track, frame: Frame) -> dict[str, Any]:
    """A track of a frame as a nuScenes result box, moved from the frame time to the sample time."""
    world = box_ops.transform_boxes(track.box[None], frame.model_to_world)[0]
    dt_s = (frame.sample_timestamp_ns - frame.timestamp_ns) * 1e-9
    return result_box(world, frame.token, dt_s, track.track_id, track.class_name, track.score)


def track_frames(
    frames: NuScenesFrames,
    backend: Backend,
    cfg: ModelConfig,
    tracker_factory: Callable[[], Tracker],
    progress: bool = True,
    cache: FeatureSource | None = None,
    without: Sequence[str] = (),
    exit_factory: Callable[[], EarlyExit | None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Results per sample token for every key frame of `frames` (tracker reset at each scene).

    With a feature ``cache`` of the same encoder, the encoder's output is read from it (float16)
    instead of computed: for learning curves and tuning, where only the decoder changes.
    ``without``: camera channels treated as missing in every frame (blank image, masked out), as
    the node does with a camera that fails. ``exit_factory``: each scene's early-exit rule
    (None: every layer).
    """
    results: dict[str, list[dict[str, Any]]] = {}
    cameras = camera_mask(without)
    bar = tqdm(total=len(frames), desc="track", disable=not progress)
    for scene in frames.scene_names:
        rule = exit_factory() if exit_factory is not None else None
        pipeline = FramePipeline(backend, tracker_factory(), cfg.input, CAMERA_CHANNELS, early_exit=rule)
        for i in frames.scene_slices[scene]:
            frame: Frame = frames[i]
            inputs = dataset_frame_inputs(frame, cfg, cameras, with_images=cache is None)
            # a masked camera's cached features never reach the decoder: the cache serves as is
            features = None if cache is None else _backend_features(backend, cache.features(i))
            tracks = pipeline.track(inputs, features).tracks
            results[frame.token] = [
                result_entry(t, frame) for t in tracks if t.class_name in TRACKING_CLASSES
            ]
            bar.update(1)
    bar.close()
    return results


def _backend_features(backend: Backend, cached: torch.Tensor) -> Any:
    """One frame's cached features in the form the backend's decode takes."""
    features = cached[None].to(torch.float32)
    if isinstance(backend, TorchBackend):
        return features.to(backend.device)
    return features.numpy()


def camera_mask(without: Sequence[str]) -> NDArray[np.bool_]:
    """(N,) bool over the rig's channels: False for each channel in ``without``."""
    unknown = sorted(set(without) - set(CAMERA_CHANNELS))
    if unknown:
        rig = ", ".join(CAMERA_CHANNELS)
        raise ValueError(f"unknown camera channel(s) {', '.join(unknown)}; the rig has {rig}")
    mask = np.array([ch not in without for ch in CAMERA_CHANNELS])
    if not mask.any():
        raise ValueError("cannot track without every camera")
    return mask


def track_split(
    dataroot: Path,
    version: str,
    split: str,
    model_path: Path,
    out: Path,
    device: str = "cpu",
    progress: bool = True,
    overrides: Sequence[str] = (),
    tracker: str | None = None,
    feature_cache: Path | None = None,
    without: Sequence[str] = (),
    backend_name: str = "torch",
) -> dict[str, Any]:
    """Track every scene of the split; `overrides` adjust the tracker, e.g. "tracker.birth_score=0.3".

    ``tracker`` ("queries" or "greedy") replaces the model's ``tracker.method``; None keeps it.
    ``feature_cache``: a folder of encoder feature caches (built here when missing); see
    `track_frames`, as is ``without``. ``backend_name``: torch (the checkpoint) or onnxruntime
    (its exported graphs, exported into the cache folder on first use).
    """
    if tracker is not None:
        overrides = [*overrides, f"tracker.method={tracker}"]
    run = _SplitRun(dataroot, version, split, model_path, device, overrides, backend_name)
    exp = run.exp

    def factory() -> Tracker:
        return make_tracker(exp.tracker, exp.model, seed=0)

    def exit_factory() -> EarlyExit | None:
        return early_exit_for(exp.tracker, exp.model.num_layers)

    results = run.results(factory, exit_factory, progress, feature_cache, without)
    write_json_atomic(out, {"meta": RESULTS_META, "results": results})
    return _stats(results, run.frames)


def detect_split(
    dataroot: Path,
    version: str,
    split: str,
    model_path: Path,
    out: Path,
    device: str = "cpu",
    progress: bool = True,
    max_boxes: int = DEFAULT_MAX_BOXES,
    feature_cache: Path | None = None,
    without: Sequence[str] = (),
    backend_name: str = "torch",
) -> dict[str, Any]:
    """The detector alone over every frame of the split -> nuScenes *detection* results.

    Each sample gets its frame's top ``max_boxes`` (query, class) pairs, unlinked and whatever
    their score (:class:`DetectorOnly`), every layer decoded: the input of the official
    detection metrics (mAP, NDS). The other arguments are those of `track_split`.
    """
    run = _SplitRun(dataroot, version, split, model_path, device, (), backend_name)

    def factory() -> Tracker:
        return DetectorOnly(run.exp.model, max_boxes)

    results = run.results(factory, None, progress, feature_cache, without)
    detections = {token: [detection_box(box) for box in boxes] for token, boxes in results.items()}
    write_json_atomic(out, {"meta": RESULTS_META, "results": detections})
    return _stats(results, run.frames)


class _SplitRun:
    """A split's frames and a checkpoint's network behind the chosen backend."""

    def __init__(
        self,
        dataroot: Path,
        version: str,
        split: str,
        model_path: Path,
        device: str,
        overrides: Sequence[str],
        backend_name: str,
    ) -> None:
        self.net, exp, _ = load_model(model_path, device)
        self.exp = with_tracker_overrides(exp, overrides, "tracking time")
        self.frames = NuScenesFrames(dataroot, version, split=split)
        self.backend: Backend
        if backend_name == "torch":
            self.backend = TorchBackend(self.net, device)
        else:
            layers = self.exp.tracker.early_exit.enabled
            self.backend = create_backend(backend_name, model_path, device, layers=layers)

    def results(
        self,
        factory: Callable[[], Tracker],
        exit_factory: Callable[[], EarlyExit | None] | None,
        progress: bool,
        feature_cache: Path | None,
        without: Sequence[str],
    ) -> dict[str, list[dict[str, Any]]]:
        cache = None
        if feature_cache is not None:  # learning curves and tuning: only the decoder changes
            cache = FeatureCache(feature_cache, self.net, self.frames, self.exp.model)
            cache.build(progress)
        return track_frames(
            self.frames, self.backend, self.exp.model, factory, progress, cache, without, exit_factory
        )


def _stats(results: dict[str, list[dict[str, Any]]], frames: NuScenesFrames) -> dict[str, Any]:
    boxes = sum(len(v) for v in results.values())
    return {
        "samples": len(results),
        "boxes": boxes,
        "scenes": len(frames.scene_names),
        "mean_boxes": float(np.mean([len(v) for v in results.values()])) if results else 0.0,
    }
