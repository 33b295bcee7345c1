"""Object classes, their nuScenes-like sizes, and the moving actors of a scene."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.data.synth.kinematics import Path, Profile

# The seven nuScenes tracking classes; ``classes`` arrays index into this tuple.
CLASSES = ("car", "truck", "bus", "trailer", "pedestrian", "motorcycle", "bicycle")
CAR, TRUCK, BUS, TRAILER, PEDESTRIAN, MOTORCYCLE, BICYCLE = range(len(CLASSES))

# nuScenes category name of each class, as the tracking benchmark maps them.
CATEGORY_NAMES = (
    "vehicle.car",
    "vehicle.truck",
    "vehicle.bus.rigid",
    "vehicle.trailer",
    "human.pedestrian.adult",
    "vehicle.motorcycle",
    "vehicle.bicycle",
)

# Mean (l, w, h) in metres, close to the nuScenes training-set averages.
MEAN_LWH = np.array(
    [
        [4.63, 1.96, 1.74],
        [6.94, 2.52, 2.84],
        [11.2, 2.94, 3.47],
        [12.3, 2.92, 3.87],
        [0.73, 0.67, 1.77],
        [2.11, 0.77, 1.47],
        [1.70, 0.61, 1.29],
    ]
)
# Relative standard deviation of each dimension: small, so classes stay separable by size.
SIZE_JITTER = np.array([0.06, 0.05, 0.05])

# Speed below which an object counts as standing still (m/s).
MOVING_SPEED = 0.3


def sample_size(rng: np.random.Generator, cls: int) -> NDArray[np.float64]:
    """A plausible (l, w, h) for ``cls``: the class mean with clipped Gaussian jitter."""
    rel = np.clip(rng.normal(0.0, SIZE_JITTER), -2.0 * SIZE_JITTER, 2.0 * SIZE_JITTER)
    return np.asarray(MEAN_LWH[cls] * (1.0 + rel))


@dataclass(frozen=True)
class Actor:
    """One object: a box of fixed size whose center follows ``path``.

    The arc length at time t (s) is ``s_offset + profile(t)``; the box
    heading is the path tangent plus ``yaw_offset`` (non-zero only for
    objects standing at an angle, e.g. a waiting pedestrian).
    """

    cls: int
    lwh: NDArray[np.float64]
    path: Path
    profile: Profile
    s_offset: float = 0.0
    yaw_offset: float = 0.0
    parked: bool = False  # a parked vehicle, or a cycle without rider
    behaviour: str = ""  # free-form label of how it was generated, for debugging

    def state(
        self, t: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Position x, y, yaw and signed speed along the heading at time(s) t (s)."""
        s, v = self.profile.at(t)
        x, y, heading = self.path.eval(s + self.s_offset)
        return x, y, heading + self.yaw_offset, v

    def attribute(self, speed: float) -> str:
        """nuScenes attribute name for this actor moving at ``speed`` (m/s)."""
        moving = abs(speed) > MOVING_SPEED
        if self.cls == PEDESTRIAN:
            return "pedestrian.moving" if moving else "pedestrian.standing"
        if self.cls in (BICYCLE, MOTORCYCLE):
            return "cycle.without_rider" if self.parked else "cycle.with_rider"
        if moving:
            return "vehicle.moving"
        return "vehicle.parked" if self.parked else "vehicle.stopped"
