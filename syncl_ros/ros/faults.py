"""Seeded random faults injected into a bag replay (`syncl play --faults SEED`), for soak tests.

The player asks the injector about every message it is about to publish; the injector decides,
from a schedule drawn with its own seeded generator on the player's clock, whether to pass the
message on, replace it with a broken copy, or hold it back. Faults, one at a time, at
exponentially spaced times (mean ``every_s``), each on a random camera where it concerns one:

* ``corrupt``    the camera's next image with its first bytes overwritten (no JPEG header)
* ``truncated``  the camera's next image cut short (no end-of-image marker)
* ``wrong_size`` the camera's next image replaced by itself at half size
* ``silent``     no images from the camera for a few seconds (the anchor camera included)
* ``nan_tf``     the next /tf message with a NaN translation
* ``time_jump``  the pass restarts from the bag's start (stamps jump back), as a loop does early
* ``burst``      a few seconds replayed at twice the rate

Every image, transform or jump injected is one JSON line in the log (monotonic time, kind,
camera and header stamp), so that a soak run can match it against what the node reports.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import cv2
import numpy as np
from rclpy.serialization import deserialize_message

KINDS = ("corrupt", "truncated", "wrong_size", "silent", "nan_tf", "time_jump", "burst")
# How the node reports a camera's bad or missing image: frames.without.<reason>.<camera>.
IMAGE_REASONS = {
    "corrupt": "decode_error",
    "truncated": "decode_error",
    "wrong_size": "size_mismatch",
    "silent": "missing",
}
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"


@dataclass(frozen=True)
class FaultSettings:
    seed: int
    every_s: float = 5.0  # mean time between faults
    silent_s: tuple[float, float] = (1.0, 4.0)  # range of a silent camera's outage
    burst_s: tuple[float, float] = (2.0, 5.0)  # range of a burst's length
    # A jump this early in the bag would be too small for the node to tell from jitter (0.5 s),
    # and stamps seen again this soon could not be told apart by a soak run either.
    min_jump_offset_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.every_s > 0:
            raise ValueError(f"--fault-every must be > 0, got {self.every_s}")


def _corrupt(data: bytes, rng: random.Random) -> bytes:
    """Garbage over the headers. A JPEG has no checksum: garbage in its entropy-coded data decodes
    to a wrong picture that no decoder can refuse, so only header damage is a detectable fault."""
    n = min(len(data), rng.randint(16, 256))
    garbage = bytearray(rng.getrandbits(8) for _ in range(n))
    garbage[0] = 0x00  # never a JPEG or PNG signature by chance
    return bytes(garbage) + data[n:]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    cut = data[: rng.randint(len(data) // 4, 3 * len(data) // 4)]
    return cut[:-2] if cut.rstrip(b"\x00").endswith(_JPEG_EOI) else cut


def _half_size(data: bytes, rng: random.Random) -> bytes:
    """The same picture at half its width and height: a valid image its CameraInfo does not fit."""
    small = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_2)
    if small is None:
        raise ValueError("wrong_size: the recorded image does not decode")
    return bytes(cv2.imencode(".jpg", small)[1])


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "corrupt": _corrupt,
    "truncated": _truncate,
    "wrong_size": _half_size,
}


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


class FaultInjector:
    """Decides per message; ``image_topics`` maps each camera's image topic to its camera name."""

    def __init__(
        self,
        settings: FaultSettings,
        image_topics: Mapping[str, str],
        log: TextIO,
        loop: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.image_topics = dict(image_topics)
        self.cameras = sorted(set(self.image_topics.values()))
        # A jump restarts the pass: only a looping player can; image faults need images.
        self.kinds = tuple(
            k
            for k in KINDS
            if (loop or k != "time_jump") and (self.cameras or (k not in MUTATIONS and k != "silent"))
        )
        self.rng = random.Random(settings.seed)
        self.log = log
        self.clock = clock
        self.counts: dict[str, int] = {}
        self._next_at = math.inf
        self._pending_images: dict[str, list[str]] = {c: [] for c in self.cameras}
        self._silent_until: dict[str, float] = {}
        self._burst_until = -math.inf
        self._nan_tf = 0
        self._jump = False

    # -- schedule ----------------------------------------------------------------------------

    def start(self) -> None:
        """Playing begins: the first fault is drawn from now."""
        now = self.clock()
        self._write("start", now, seed=self.settings.seed, every_s=self.settings.every_s, kinds=self.kinds)
        self._next_at = now + self.rng.expovariate(1.0 / self.settings.every_s)

    def _due(self, now: float) -> None:
        while now >= self._next_at:
            self._begin(self.rng.choice(self.kinds), self._next_at)
            self._next_at += self.rng.expovariate(1.0 / self.settings.every_s)

    def _begin(self, kind: str, at: float) -> None:
        """Arm one fault; it takes effect on the next message it concerns."""
        camera = self.rng.choice(self.cameras)
        if kind in MUTATIONS:
            self._pending_images[camera].append(kind)
        elif kind == "silent":
            seconds = self.rng.uniform(*self.settings.silent_s)
            self._silent_until[camera] = max(self._silent_until.get(camera, -math.inf), at + seconds)
            self._write("silence", at, camera=camera, seconds=round(seconds, 3))
        elif kind == "burst":
            seconds = self.rng.uniform(*self.settings.burst_s)
            self._burst_until = max(self._burst_until, at + seconds)
            self._write("burst", at, seconds=round(seconds, 3))
        elif kind == "nan_tf":
            self._nan_tf += 1
        elif kind == "time_jump":
            self._jump = True

    # -- per message -------------------------------------------------------------------------

    def rate_factor(self) -> float:
        """2 during a burst, else 1 (the player scales its rate by it)."""
        now = self.clock()
        self._due(now)
        return 2.0 if now < self._burst_until else 1.0

    def jump_due(self, bag_offset_s: float) -> bool:
        """Whether to restart the pass now (an armed jump, far enough into the bag)."""
        now = self.clock()
        self._due(now)
        if not self._jump or bag_offset_s < self.settings.min_jump_offset_s:
            return False
        self._jump = False
        self._write("time_jump", now, cause="injected", bag_offset_s=round(bag_offset_s, 3))
        return True

    def looped(self) -> None:
        """The player started over at the bag's end: a time jump the node sees too."""
        self._write("time_jump", self.clock(), cause="loop")

    def apply(self, topic: str, msg_class: Any, raw: bytes) -> Any:
        """What to publish for one message: ``raw``, a broken message, or None (held back)."""
        now = self.clock()
        self._due(now)
        camera = self.image_topics.get(topic)
        if camera is not None and getattr(msg_class, "__name__", "") == "CompressedImage":
            return self._image(camera, msg_class, raw, now)
        if topic == "/tf" and self._nan_tf:
            return self._poison_tf(msg_class, raw, now)
        return raw

    def _image(self, camera: str, msg_class: Any, raw: bytes, now: float) -> Any:
        silent = now < self._silent_until.get(camera, -math.inf)
        if not silent and not self._pending_images[camera]:
            return raw
        msg = deserialize_message(raw, msg_class)
        if silent:
            self._write("silent", now, camera=camera, stamp_ns=_stamp_ns(msg))
            return None
        kind = self._pending_images[camera].pop(0)
        msg.data = MUTATIONS[kind](bytes(msg.data), self.rng)
        self._write(kind, now, camera=camera, stamp_ns=_stamp_ns(msg))
        return msg

    def _poison_tf(self, msg_class: Any, raw: bytes, now: float) -> Any:
        msg = deserialize_message(raw, msg_class)
        if not msg.transforms:
            return raw
        self._nan_tf -= 1
        t = msg.transforms[0]
        t.transform.translation.x = float("nan")
        self._write("nan_tf", now, child=t.child_frame_id, stamp_ns=_stamp_ns(t))
        return msg

    def _write(self, kind: str, t: float, **fields: Any) -> None:
        if kind != "start":
            self.counts[kind] = self.counts.get(kind, 0) + 1
        self.log.write(json.dumps({"t": round(t, 6), "kind": kind, **fields}) + "\n")
        self.log.flush()  # read by a soak run while the player may still be stopping

    def summary(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in sorted(self.counts.items())) or "none"
