"""One frame through the network and the tracker: the code the node, offline tracking
(`syncl track`), the benchmarks and the demo all run.

    assemble  live frames only: images, calibration and ego poses -> network inputs
    encode    images -> image features (the heavy, stateless part; device synchronized)
    prepare   the tracker's state -> track slots for the decoder
    decode    features + camera geometry + slots -> detection and track rows (host arrays);
              with early exit (tracker.early_exit) layer by layer, stopping where the rule says
    update    the tracker: births, confirmations, coasting, ends -> tracks

Timings are per stage in milliseconds; "tracker" is the host tracker's prepare and update.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from syncl_ros.inference.backend import Backend
from syncl_ros.model.config import InputConfig
from syncl_ros.pipeline.frame_inputs import FrameInputs, RigCapture, assemble
from syncl_ros.tracking.early_exit import EarlyExit
from syncl_ros.tracking.interface import DecoderOutputs, Track, Tracker, TrackSlots

STAGES = ("assemble", "encode", "decode", "tracker")


@dataclass(frozen=True)
class FrameResult:
    tracks: list[Track]  # in the model frame (base_link at the frame's stamp)
    inputs: FrameInputs
    outputs: DecoderOutputs  # the decoder's rows, e.g. for a second tracker on the same frame
    timings_ms: dict[str, float]  # stage -> milliseconds, in STAGES order (assemble: live frames only)
    decoder_layers: int  # decoder layers run (fewer than the model's after an early exit)


class FramePipeline:
    """A backend and a tracker, one frame at a time (not thread-safe: one caller at a time)."""

    def __init__(
        self,
        backend: Backend,
        tracker: Tracker,
        cfg: InputConfig,
        channels: Sequence[str],
        min_cameras: int | None = None,
        early_exit: EarlyExit | None = None,
    ) -> None:
        self.backend = backend
        self.tracker = tracker
        self.cfg = cfg
        self.channels = list(channels)
        self.min_cameras = min_cameras  # fewest usable cameras a live frame goes on with (None: all)
        self.early_exit = early_exit  # None: every layer, through the single decoder graph

    def process(self, capture: RigCapture) -> FrameResult:
        """A live rig frame: assembled, then tracked (timings with "assemble")."""
        start = time.perf_counter()
        inputs = self.assemble(capture)
        assemble_ms = _ms(time.perf_counter() - start)
        result = self.track(inputs)
        return replace(result, timings_ms={"assemble": assemble_ms, **result.timings_ms})

    def assemble(self, capture: RigCapture) -> FrameInputs:
        """Network inputs of a live rig frame. Raises FrameError for a frame that cannot be
        assembled (too few usable cameras, no ego pose); the tracker is then untouched."""
        return assemble(
            self.channels,
            capture.images,
            capture.stamps_ns,
            capture.stamp_ns,
            capture.intrinsics,
            capture.extrinsics,
            capture.ego_pose,
            self.cfg,
            self.min_cameras,
        )

    def track(self, inputs: FrameInputs, features: Any = None) -> FrameResult:
        """Network and tracker on assembled inputs; ``features``: the encoder's output for these
        images when it is at hand already (a feature cache), in the backend's form."""
        clock = time.perf_counter
        t0 = clock()
        if features is None:
            if inputs.images is None:
                raise ValueError("a frame without images needs its encoder features")
            features = self.backend.encode(inputs.images)
        self.backend.synchronize()  # device work queued by encode counts as encode
        t1 = clock()
        slots = self.tracker.prepare(inputs.stamp_ns, inputs.model_to_world)
        t2 = clock()
        outputs, layers = self._decode(features, inputs, slots)
        t3 = clock()
        tracks = self.tracker.update(outputs)
        t4 = clock()
        timings = {"encode": _ms(t1 - t0), "decode": _ms(t3 - t2), "tracker": _ms((t2 - t1) + (t4 - t3))}
        return FrameResult(tracks, inputs, outputs, timings, layers)

    def _decode(self, features: Any, inputs: FrameInputs, slots: TrackSlots) -> tuple[DecoderOutputs, int]:
        """The decoder's rows for the tracker, and how many layers ran."""
        rule = self.early_exit
        if rule is not None:
            rule.start_frame(slots, self.tracker.resets, self.backend.info.pc_range)
        if rule is None or rule.full_depth:  # the single graph: no per-layer hand-over to pay for
            outputs = self.backend.decode(features, inputs.img2lidar, slots, inputs.cameras)
            return outputs, self.backend.info.num_layers
        layers = self.backend.decode_layers(features, inputs.img2lidar, slots, inputs.cameras)
        for layer, outputs in enumerate(layers, start=1):
            if rule.stops_after(layer, outputs):
                break
        return outputs, layer

    def reset(self) -> None:
        """Start the tracker over (a time jump, a gap in the ego poses, a new scene)."""
        self.tracker.reset()


def _ms(seconds: float) -> float:
    return seconds * 1000.0
