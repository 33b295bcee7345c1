"""Candidate road users for a street: lane traffic with traffic-light queues,
parked vehicles, cyclists, pedestrians on sidewalks and crossing, and cross traffic.

The candidates may collide with each other; :mod:`world` keeps a
collision-free subset. Every function draws from the generator it is given,
in a fixed order, so a scene is a pure function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from syncl_ros.data.synth.actors import (
    BICYCLE,
    BUS,
    CAR,
    MOTORCYCLE,
    PEDESTRIAN,
    TRAILER,
    TRUCK,
    Actor,
    sample_size,
)
from syncl_ros.data.synth.kinematics import Path, Profile, ProfileBuilder
from syncl_ros.data.synth.layout import Street

# Lane traffic mix; "rig" is a truck towing a trailer.
LANE_MIX = (("car", 0.72), ("truck", 0.08), ("bus", 0.06), ("motorcycle", 0.08), ("rig", 0.06))
PARKED_MIX = ((CAR, 0.86), (TRUCK, 0.05), (TRAILER, 0.05), (MOTORCYCLE, 0.04))
_KIND_CLASS = {"car": CAR, "truck": TRUCK, "bus": BUS, "motorcycle": MOTORCYCLE, "bicycle": BICYCLE}

T = TypeVar("T")

HITCH_GAP = 1.2  # between a truck and its trailer (m)
QUEUE_GAP = 2.5  # between vehicles waiting at a red light (m)
DEPART_DELAY = 1.3  # each queued vehicle starts this much after the one ahead (s)


@dataclass(frozen=True)
class RedLight:
    """Route traffic must wait before the stop lines of ``intersection_s`` during [start, end] (s)."""

    start: float
    end: float
    intersection_s: float
    clearance: float  # route distance from the intersection center to its stop lines


@dataclass
class Unit:
    """Vehicles moving as one along a lane: one car, or a truck and its trailer."""

    members: list[tuple[int, NDArray[np.float64]]]  # (class, lwh) from the front
    front: float  # arc length of the unit's front at t = 0
    profile: Profile | None = None
    behaviour: str = ""
    parked: bool = False
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def length(self) -> float:
        return float(sum(lwh[0] for _, lwh in self.members) + HITCH_GAP * (len(self.members) - 1))

    def actors(self, path: Path) -> list[Actor]:
        assert self.profile is not None
        out, back = [], 0.0
        for cls, lwh in self.members:
            center = self.front - back - lwh[0] / 2.0
            out.append(
                Actor(cls, lwh, path, self.profile, center, parked=self.parked, behaviour=self.behaviour)
            )
            back += lwh[0] + HITCH_GAP
        return out


def _pick(rng: np.random.Generator, mix: Sequence[tuple[T, float]]) -> T:
    weights = np.array([w for _, w in mix])
    return mix[int(rng.choice(len(mix), p=weights / weights.sum()))][0]


def _vehicle_unit(rng: np.random.Generator, kind: str, front: float) -> Unit:
    if kind == "rig":
        return Unit([(TRUCK, sample_size(rng, TRUCK)), (TRAILER, sample_size(rng, TRAILER))], front)
    return Unit([(_KIND_CLASS[kind], sample_size(rng, _KIND_CLASS[kind]))], front)


def spawn_units(
    rng: np.random.Generator,
    s_from: float,
    s_to: float,
    gap: tuple[float, float],
    kinds: tuple[str, ...] = (),
) -> list[Unit]:
    """Units from ``s_to`` backwards to ``s_from`` with random gaps, leader first."""
    units: list[Unit] = []
    front = s_to - rng.uniform(0.0, gap[1])
    while front > s_from:
        kind = _pick(rng, LANE_MIX) if not kinds else str(rng.choice(kinds))
        unit = _vehicle_unit(rng, kind, front)
        units.append(unit)
        front -= unit.length + rng.uniform(*gap)
    return units


def plan_queue(
    rng: np.random.Generator, units: list[Unit], speed: float, line: float | None, red: RedLight | None
) -> None:
    """Give each unit of a lane a profile: cruise, or wait at the red light and go at green.

    Units arrive in order; each one that would start braking during the red
    phase stops behind the queue, and the queue departs one by one. Units
    with a profile already (the ego) keep it but still take their place in
    the queue.
    """
    decel = 2.0
    queued: list[Unit] = []
    tail = line if line is not None else 0.0
    for unit in sorted(units, key=lambda u: -u.front):
        if unit.profile is not None:
            if red is not None and line is not None and unit.front < line:
                # The preset unit (the ego) heads the queue: whoever would
                # wait ahead of it is not part of this world.
                for ahead in queued:
                    ahead.extra["drop"] = 1.0
                queued = [unit]
                tail = unit.front - unit.length - QUEUE_GAP + unit.extra.get("queue_advance", 0.0)
            continue
        unit.behaviour = "cruise"
        unit.profile = Profile.constant(speed)
        if red is None or line is None or unit.front >= line:
            continue
        braking = speed * speed / (2.0 * decel)
        t_brake = (tail - braking - unit.front) / speed
        if t_brake < red.start or t_brake >= red.end:
            continue
        depart = red.end + DEPART_DELAY * len(queued) + rng.uniform(0.0, 0.4)
        accel = rng.uniform(1.2, 2.2)
        if t_brake < 0.0:
            # Already waiting when the scene starts.
            unit.front = tail
            unit.profile = ProfileBuilder(0.0).hold_until(depart).ramp(speed, accel).build()
        else:
            builder = ProfileBuilder(speed).stop_at(tail - unit.front, decel)
            unit.profile = builder.hold_until(max(depart, builder.time + 0.5)).ramp(speed, accel).build()
        unit.behaviour = "queue"
        queued.append(unit)
        tail -= unit.length + QUEUE_GAP


def lane_line(street: Street, path: Path, red: RedLight | None, forward: bool) -> float | None:
    """Arc length on ``path`` of the front-of-vehicle stop line for the red light."""
    if red is None:
        return None
    s_route = red.intersection_s + (-red.clearance if forward else red.clearance)
    x, y, _ = street.route.eval(s_route)
    return path.project(float(x), float(y), step=0.25)


def lane_traffic(
    rng: np.random.Generator,
    street: Street,
    red: RedLight | None,
    ego_lane: int,
    ego_unit: Unit,
) -> list[Actor]:
    """Vehicles in the traffic and bike lanes of both directions; the ego's lane holds the ego unit."""
    layout = street.layout
    actors: list[Actor] = []
    for forward in (True, False):
        lanes = [(layout.lane_offset(i), "lane", i) for i in range(layout.lanes)]
        lanes.append((layout.bike_offset, "bike", -1))
        for offset, kind, index in lanes:
            path = street.side_path(offset, forward)
            total = path.total_length
            is_ego_lane = forward and index == ego_lane
            if kind == "bike":
                units = spawn_units(rng, 0.0, total, (25.0, 140.0), kinds=("bicycle",))
                speed = rng.uniform(3.5, 6.0)
            else:
                units = spawn_units(rng, 0.0, total, (9.0, 45.0))
                speed = rng.uniform(7.0, 13.0)
            if is_ego_lane:
                speed = ego_unit.extra["speed"]
                # Room around the ego: nobody within a car length plus a gap.
                lo, hi = ego_unit.front - ego_unit.length - 8.0, ego_unit.front + 8.0
                units = [u for u in units if u.front < lo or u.front - u.length > hi]
                units.append(ego_unit)
            plan_queue(rng, units, speed, lane_line(street, path, red, forward), red)
            for unit in units:
                if unit is not ego_unit and "drop" not in unit.extra:
                    actors.extend(unit.actors(path))
    return actors


def parked_vehicles(rng: np.random.Generator, street: Street) -> list[Actor]:
    """Vehicles along the curb of each side (never inside a junction) and bicycles on the sidewalk."""
    layout = street.layout
    actors: list[Actor] = []
    for forward in (True, False):
        if rng.random() < 0.8:
            path = street.side_path(layout.parking_offset, forward)
            occupancy = rng.uniform(0.25, 0.7)
            s = rng.uniform(0.0, 5.0)
            while s < path.total_length:
                cls = _pick(rng, PARKED_MIX)
                lwh = sample_size(rng, cls)
                center = s + lwh[0] / 2.0
                x, y, _ = path.eval(center)
                if rng.random() < occupancy and not street.near_intersection(x, y, lwh[0] / 2 + 1.0):
                    yaw = rng.normal(0.0, 0.03)
                    actors.append(
                        Actor(
                            cls,
                            lwh,
                            path,
                            Profile.constant(0.0),
                            center,
                            yaw,
                            parked=True,
                            behaviour="parked",
                        )
                    )
                s += lwh[0] + rng.uniform(1.0, 3.5)
        path = street.side_path(layout.road_half + 0.7, forward)
        for center in np.sort(rng.uniform(0.0, path.total_length, size=int(path.total_length / 150.0))):
            lwh = sample_size(rng, BICYCLE) * np.array([1.0, 1.0, 0.8])  # no rider: lower
            x, y, _ = path.eval(center)
            if not street.near_intersection(x, y, 2.0):
                yaw = float(rng.choice([0.0, np.pi])) + rng.normal(0.0, 0.1)
                actors.append(
                    Actor(
                        BICYCLE, lwh, path, Profile.constant(0.0), float(center), yaw, True, "parked_bicycle"
                    )
                )
    return actors


def _walk_profile(rng: np.random.Generator, speed: float, duration: float) -> Profile:
    """Walking with occasional pauses (stop-and-go for pedestrians)."""
    builder = ProfileBuilder(speed, t0=0.0)
    while builder.time < duration:
        builder.cruise(rng.uniform(3.0, 10.0))
        if rng.random() < 0.5:
            builder.ramp(0.0, 1.0).hold_until(builder.time + rng.uniform(1.0, 5.0)).ramp(speed, 1.0)
    return builder.build()


def sidewalk_pedestrians(rng: np.random.Generator, street: Street, duration: float) -> list[Actor]:
    """Pedestrians walking either way along both sidewalks, some pausing, some standing."""
    lo, hi = street.layout.sidewalk_range
    actors: list[Actor] = []
    for forward in (True, False):
        for walking_forward in (True, False):
            offset = rng.uniform(lo, hi)
            path = street.side_path(offset, forward)
            if not walking_forward:
                path = path.reversed()
            count = rng.poisson(path.total_length / 30.0)
            for center in rng.uniform(0.0, path.total_length, size=count):
                lwh = sample_size(rng, PEDESTRIAN)
                kind = rng.random()
                if kind < 0.25:
                    profile, yaw, behaviour = Profile.constant(0.0), rng.uniform(-np.pi, np.pi), "standing"
                elif kind < 0.55:
                    profile, yaw, behaviour = (
                        _walk_profile(rng, rng.uniform(1.0, 1.6), duration),
                        0.0,
                        "walk_pause",
                    )
                else:
                    profile, yaw, behaviour = Profile.constant(rng.uniform(1.0, 1.7)), 0.0, "walking"
                # Each pedestrian keeps its own distance to the curb.
                ped_path = path.offset(rng.uniform(-0.5, 0.5) * (hi - lo) * 0.5)
                actors.append(
                    Actor(PEDESTRIAN, lwh, ped_path, profile, float(center), yaw, behaviour=behaviour)
                )
    return actors


def crossing_pedestrians(
    rng: np.random.Generator, street: Street, red: RedLight | None, duration: float
) -> list[Actor]:
    """Pedestrians waiting at crosswalks and crossing the street, mostly while the route has red."""
    layout = street.layout
    half = layout.road_half + 1.2
    actors: list[Actor] = []
    for inter in street.intersections:
        for cw in inter.crosswalk_offsets:
            x, y, heading = street.route.eval(inter.s + cw)
            for _ in range(rng.poisson(2.0)):
                side = float(rng.choice([-1.0, 1.0]))
                normal = heading + np.pi / 2
                lateral = rng.uniform(-1.0, 1.0)  # spread along the crosswalk
                sx = float(x) - side * half * np.cos(normal) + lateral * np.cos(heading)
                sy = float(y) - side * half * np.sin(normal) + lateral * np.sin(heading)
                path = Path.line(sx, sy, float(normal) if side > 0 else float(normal) + np.pi, 2.0 * half)
                if red is not None and abs(red.intersection_s - inter.s) < 1.0:
                    start = rng.uniform(red.start + 2.0, max(red.start + 2.5, red.end - 4.0))
                else:
                    start = rng.uniform(-5.0, duration)
                speed = rng.uniform(1.2, 1.7)
                profile = (
                    ProfileBuilder(0.0)
                    .hold_until(start)
                    .ramp(speed, 1.5)
                    .cruise_to(2.0 * half - speed * speed / 3.0)
                    .ramp(0.0, 1.5)
                    .build()
                )
                lwh = sample_size(rng, PEDESTRIAN)
                actors.append(Actor(PEDESTRIAN, lwh, path, profile, 0.0, behaviour="crossing"))
    return actors


def cross_traffic(rng: np.random.Generator, street: Street, duration: float) -> list[Actor]:
    """Vehicles driving straight along the cross roads in both directions."""
    actors: list[Actor] = []
    for inter in street.intersections:
        for direction in (1.0, -1.0):
            heading = inter.heading + (0.0 if direction > 0 else np.pi)
            lateral = -1.75  # right-hand lane of the cross road
            cx = inter.x + lateral * -np.sin(heading) - 150.0 * np.cos(heading)
            cy = inter.y + lateral * np.cos(heading) - 150.0 * np.sin(heading)
            path = Path.line(cx, cy, heading, 300.0)
            speed = rng.uniform(6.0, 11.0)
            for unit in spawn_units(
                rng, -speed * duration, 300.0, (12.0, 40.0), kinds=("car", "car", "truck")
            ):
                unit.profile = Profile.constant(speed)
                unit.behaviour = "cross"
                actors.extend(unit.actors(path))
    return actors
