"""The synthetic world: a street scene with an ego car and road users, queryable at any time.

``simulate(seed)`` builds a :class:`Scene` deterministically from the seed.
Times are integer nanoseconds on the same clock as the dataset timestamps
(``scene.start_ns`` is the first key frame's trigger); queries before or
after the simulated span extrapolate the motions, they never fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from syncl_ros.data.synth import traffic
from syncl_ros.data.synth.actors import CAR, CLASSES, PEDESTRIAN, Actor
from syncl_ros.data.synth.kinematics import PathBatch, Profile, ProfileBatch, ProfileBuilder
from syncl_ros.data.synth.layout import RoadLayout, Street, build_route, make_intersection
from syncl_ros.geometry import Transform

# base_link sits on the ground below the rear axle, as in nuScenes; the
# ego body reaches this far ahead of it and behind it (m).
EGO_FRONT = 3.7
EGO_REAR = 1.0
EGO_WIDTH = 1.95
# Objects farther than this from the ego at all times are not simulated (m).
KEEP_RADIUS = 90.0
COLLISION_DT = 0.1  # time step of the collision check (s)

__all__ = ["CLASSES", "Scene", "simulate"]


@dataclass(eq=False)  # identity semantics: scenes key caches of derived data
class Scene:
    """One simulated scene; all geometry in the world frame (x, y on the ground, z up)."""

    seed: int
    start_ns: int
    duration_ns: int
    street: Street
    ego: Actor  # its path point is base_link
    actors: tuple[Actor, ...]  # index = stable instance id
    sun: NDArray[np.float64]  # unit vector towards the sun
    scenario: str = ""
    _paths: PathBatch = field(init=False, repr=False)
    _profiles: ProfileBatch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._paths = PathBatch([a.path for a in self.actors])
        self._profiles = ProfileBatch([a.profile for a in self.actors])
        self._offsets = np.array([a.s_offset for a in self.actors])
        self._yaw_offsets = np.array([a.yaw_offset for a in self.actors])
        self._lwh = np.array([a.lwh for a in self.actors]).reshape(-1, 3)
        self._classes = np.array([a.cls for a in self.actors], dtype=np.int64)

    def seconds(self, t_ns: int) -> float:
        """Scene-relative time in seconds (exact for integer nanoseconds)."""
        return (int(t_ns) - self.start_ns) / 1e9

    @property
    def num_objects(self) -> int:
        return len(self.actors)

    @property
    def classes(self) -> NDArray[np.int64]:
        """Class index (into CLASSES) of every instance id."""
        return self._classes

    def ego_pose(self, t_ns: int) -> Transform:
        """base_link -> world at ``t_ns``."""
        x, y, yaw, _ = self.ego.state(self.seconds(t_ns))
        return Transform.from_xy_yaw(float(x), float(y), float(yaw))

    def ego_speed(self, t_ns: int) -> float:
        return float(self.ego.state(self.seconds(t_ns))[3])

    def objects_at(self, t_ns: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """All objects at ``t_ns``: ids (N,), classes (N,), world boxes (N,9) [x,y,z,l,w,h,yaw,vx,vy]."""
        n = self.num_objects
        boxes = np.zeros((n, 9))
        if n:
            s, v = self._profiles.at(self.seconds(t_ns))
            x, y, heading = self._paths.eval(s + self._offsets)
            yaw = heading + self._yaw_offsets
            boxes[:, 0], boxes[:, 1], boxes[:, 2] = x, y, self._lwh[:, 2] / 2.0
            boxes[:, 3:6] = self._lwh
            boxes[:, 6] = (yaw + np.pi) % (2.0 * np.pi) - np.pi
            # Speed times the unit tangent: the exact derivative of (x, y).
            boxes[:, 7], boxes[:, 8] = v * np.cos(heading), v * np.sin(heading)
        return np.arange(n), self._classes.copy(), boxes

    def attributes_at(self, t_ns: int) -> list[str]:
        """nuScenes attribute name of every object at ``t_ns`` (aligned with :meth:`objects_at`)."""
        _, v = self._profiles.at(self.seconds(t_ns))
        return [actor.attribute(float(speed)) for actor, speed in zip(self.actors, v, strict=True)]


def _footprints(actors: list[Actor], times: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, T, 5) center x, y, yaw, half length, half width of each actor over time."""
    out = np.zeros((len(actors), len(times), 5))
    for i, actor in enumerate(actors):
        x, y, yaw, _ = actor.state(times)
        out[i, :, 0], out[i, :, 1], out[i, :, 2] = x, y, yaw
        out[i, :, 3], out[i, :, 4] = actor.lwh[0] / 2.0, actor.lwh[1] / 2.0
    return out


def _overlap(
    a: NDArray[np.float64], b: NDArray[np.float64], margin: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Whether oriented rectangles a (..., 5) and b (..., 5) come closer than ``margin``.

    Separating-axis test: two rectangles are disjoint iff one of their four
    edge directions separates their projections.
    """
    d = b[..., :2] - a[..., :2]
    axes = [a[..., 2], a[..., 2] + np.pi / 2, b[..., 2], b[..., 2] + np.pi / 2]
    separated = np.zeros(d.shape[:-1], dtype=bool)
    for ang in axes:
        n = np.stack([np.cos(ang), np.sin(ang)], axis=-1)
        ra = a[..., 3] * np.abs(np.cos(ang - a[..., 2])) + a[..., 4] * np.abs(np.sin(ang - a[..., 2]))
        rb = b[..., 3] * np.abs(np.cos(ang - b[..., 2])) + b[..., 4] * np.abs(np.sin(ang - b[..., 2]))
        separated |= np.abs((d * n).sum(axis=-1)) > ra + rb + margin
    return ~separated


def _margin(actor: Actor) -> float:
    """Clearance an actor keeps (half of a pair's margin), smaller for people."""
    return 0.1 if actor.cls == PEDESTRIAN else 0.35


def _ego_footprint(ego: Actor, times: NDArray[np.float64]) -> NDArray[np.float64]:
    x, y, yaw, _ = ego.state(times)
    shift = (EGO_FRONT - EGO_REAR) / 2.0
    fp = np.zeros((1, len(times), 5))
    fp[0, :, 0], fp[0, :, 1], fp[0, :, 2] = x + shift * np.cos(yaw), y + shift * np.sin(yaw), yaw
    fp[0, :, 3], fp[0, :, 4] = (EGO_FRONT + EGO_REAR) / 2.0, EGO_WIDTH / 2.0
    return fp


def _select(candidates: list[Actor], ego: Actor, duration: float) -> list[Actor]:
    """Candidates that come near the ego and never collide with it or with an earlier pick."""
    times = np.arange(-1.0, duration + 1.0 + 1e-9, COLLISION_DT)
    ego_fp = _ego_footprint(ego, times)
    fps = _footprints(candidates, times)
    dist = np.hypot(fps[..., 0] - ego_fp[..., 0], fps[..., 1] - ego_fp[..., 1])
    near = dist.min(axis=1) < KEEP_RADIUS
    kept: list[Actor] = []
    kept_fp = [ego_fp[0]]
    kept_margin = [0.35]
    for i in np.flatnonzero(near):
        fp = fps[i]
        others = np.stack(kept_fp)  # (M, T, 5)
        # Cheap bound first: only pairs whose centers come within reach.
        reach = np.hypot(fp[:, 3], fp[:, 4])[None] + np.hypot(others[..., 3], others[..., 4]) + 1.0
        close = np.hypot(others[..., 0] - fp[None, :, 0], others[..., 1] - fp[None, :, 1]) < reach
        if close.any():
            m_idx, t_idx = np.nonzero(close)
            margin = np.array(kept_margin)[m_idx] + _margin(candidates[i])
            if _overlap(fp[t_idx], others[m_idx, t_idx], margin).any():
                continue
        kept.append(candidates[i])
        kept_fp.append(fp)
        kept_margin.append(_margin(candidates[i]))
    return kept


def _ego_plan(
    rng: np.random.Generator, duration: float, s0: float
) -> tuple[str, Profile, float, float | None]:
    """Ego motion: cruise, stop at a red light and go, or start from a red light.

    Returns the scenario, the profile, its speed and, when the ego waits at
    a light, the time it has to wait from (``None`` otherwise).
    """
    speed = rng.uniform(6.0, 11.0)
    scenario = str(rng.choice(["cruise", "stop", "start"], p=[0.35, 0.45, 0.2]))
    if scenario == "stop":
        t_brake = rng.uniform(0.5, max(0.6, 0.35 * duration))
        hold = rng.uniform(5.0, 10.0)
        decel = rng.uniform(1.6, 2.4)
        builder = ProfileBuilder(speed, s0).cruise(t_brake).ramp(0.0, decel)
        builder.hold_until(builder.time + hold).ramp(speed, rng.uniform(1.2, 2.0))
        return scenario, builder.build(), speed, t_brake
    if scenario == "start":
        green = rng.uniform(1.0, max(1.5, 0.3 * duration))
        profile = ProfileBuilder(0.0, s0).hold_until(green).ramp(speed, rng.uniform(1.2, 2.0)).build()
        return scenario, profile, speed, -100.0
    return scenario, Profile.constant(speed, s0), speed, None


def _red_light_end(profile: Profile) -> float:
    """Time the ego starts moving again after its stop (the end of the red phase)."""
    stopped = np.flatnonzero((profile.v == 0.0)[:-1])
    return float(profile.t[stopped[-1] + 1]) if len(stopped) else 0.0


def simulate(seed: int, duration_s: float = 20.0, start_ns: int = 0) -> Scene:
    """Generate the scene of ``seed``, covering ``duration_s`` seconds from ``start_ns``."""
    rng = np.random.default_rng(seed)
    layout = RoadLayout(lanes=int(rng.choice([1, 2], p=[0.35, 0.65])))
    ego_lane = int(rng.integers(layout.lanes))
    s0 = 150.0  # the ego's start on the route, leaving road behind it
    scenario, profile, speed, red_start = _ego_plan(rng, duration_s, s0)
    travelled = float(profile.at(duration_s)[0][()]) - s0

    # Intersections: the one where the ego waits, then others on the straights.
    cross_half = 4.5
    line_clearance = cross_half + 3.0 + 0.5  # intersection center to the stop lines
    stop_front = None
    if red_start is not None:
        stop_front = float(profile.s[np.argmax(profile.v == 0.0)]) + EGO_FRONT
    first_straight = rng.uniform(180.0, 260.0)
    if stop_front is not None:
        first_straight = max(first_straight, stop_front + line_clearance + 50.0)
    route, straights = build_route(rng, first_straight, s0 + travelled + 220.0, rng.uniform(-np.pi, np.pi))
    inters = []
    if stop_front is not None:
        inters.append(make_intersection(route, stop_front + 1.0 + line_clearance, cross_half))
    for lo, hi in straights:
        s = lo + 30.0
        while s < hi - 30.0:
            s += rng.uniform(40.0, 160.0)
            far_enough = all(abs(s - i.s) > 60.0 for i in inters)
            if s < hi - 30.0 and far_enough and s0 - 80.0 < s < s0 + travelled + 100.0:
                inters.append(make_intersection(route, s, cross_half))
    street = Street(route, layout, tuple(sorted(inters, key=lambda i: i.s)))

    ego_lwh = np.array([EGO_FRONT + EGO_REAR, EGO_WIDTH, 1.7])
    ego_path = street.side_path(layout.lane_offset(ego_lane), forward=True)
    ego = Actor(CAR, ego_lwh, ego_path, profile, 0.0, behaviour=scenario)
    red = None
    if red_start is not None and stop_front is not None:
        red = traffic.RedLight(red_start, _red_light_end(profile), inters[0].s, line_clearance)
    ego_unit = traffic.Unit([(CAR, ego_lwh)], s0 + EGO_FRONT, profile=profile)
    ego_unit.extra = {"speed": speed, "queue_advance": (stop_front or 0.0) - (s0 + EGO_FRONT)}

    candidates = traffic.lane_traffic(rng, street, red, ego_lane, ego_unit)
    candidates += traffic.parked_vehicles(rng, street)
    candidates += traffic.sidewalk_pedestrians(rng, street, duration_s)
    candidates += traffic.crossing_pedestrians(rng, street, red, duration_s)
    candidates += traffic.cross_traffic(rng, street, duration_s)
    actors = _select(candidates, ego, duration_s)

    elevation, azimuth = rng.uniform(0.4, 1.1), rng.uniform(-np.pi, np.pi)
    sun = np.array(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]
    )
    return Scene(
        seed=seed,
        start_ns=int(start_ns),
        duration_ns=round(duration_s * 1e9),
        street=street,
        ego=ego,
        actors=tuple(actors),
        sun=sun,
        scenario=scenario,
    )
