"""Street layout: the route the ego drives, its cross-section and its intersections.

The road follows one route (straights, 90-degree turns and gentle curves).
Lateral offsets are measured from the road center line, left positive;
traffic drives on the right, so the ego's direction uses negative offsets
and the opposite direction positive ones on the reversed route.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.data.synth.kinematics import Path


@dataclass(frozen=True)
class RoadLayout:
    """Cross-section of the street, from the center line outwards on each side."""

    lanes: int = 2  # traffic lanes per direction
    lane_width: float = 3.5
    bike_lane: float = 1.5
    parking: float = 2.5
    sidewalk: float = 4.0

    @property
    def carriageway(self) -> float:
        """Half width of the traffic lanes plus the bike lane."""
        return self.lanes * self.lane_width + self.bike_lane

    @property
    def road_half(self) -> float:
        """Distance from the center line to the curb."""
        return self.carriageway + self.parking

    def lane_offset(self, lane: int) -> float:
        """Offset magnitude of lane ``lane`` (0 next to the center line)."""
        return (lane + 0.5) * self.lane_width

    @property
    def bike_offset(self) -> float:
        return self.lanes * self.lane_width + 0.5 * self.bike_lane

    @property
    def parking_offset(self) -> float:
        return self.carriageway + 0.5 * self.parking

    @property
    def sidewalk_range(self) -> tuple[float, float]:
        """Offsets of the walkable part of the sidewalk (kept off the curb)."""
        return self.road_half + 0.6, self.road_half + self.sidewalk - 0.5


@dataclass(frozen=True)
class Intersection:
    """A straight cross road meeting the route at arc length ``s``."""

    s: float
    x: float
    y: float
    heading: float  # direction of the cross road (perpendicular to the route)
    half_width: float  # cross road half width, curb to curb
    crosswalk: float = 3.0

    @property
    def clearance(self) -> float:
        """Distance along the route from the center to the far edge of a crosswalk."""
        return self.half_width + self.crosswalk + 0.5

    @property
    def crosswalk_offsets(self) -> tuple[float, float]:
        """Route arc-length offsets (from ``s``) of the two crosswalk center lines."""
        mid = self.half_width + 0.5 + 0.5 * self.crosswalk
        return -mid, mid


@dataclass(frozen=True)
class Street:
    """Route, cross-section and intersections of one scene."""

    route: Path
    layout: RoadLayout
    intersections: tuple[Intersection, ...]

    def side_path(self, offset: float, forward: bool) -> Path:
        """Path at ``offset`` (magnitude) on the side of the given direction, oriented along it."""
        if forward:
            return self.route.offset(-offset)
        return self.route.offset(offset).reversed()

    def near_intersection(self, x: ArrayLike, y: ArrayLike, margin: float) -> NDArray[np.bool_]:
        """Whether points lie within the cross roads (plus crosswalks and ``margin``)."""
        inside = np.zeros(np.shape(x), dtype=bool)
        for inter in self.intersections:
            # Distance along the route direction = across the cross road.
            along = -(np.asarray(x) - inter.x) * np.sin(inter.heading) + (np.asarray(y) - inter.y) * np.cos(
                inter.heading
            )
            across = (np.asarray(x) - inter.x) * np.cos(inter.heading) + (np.asarray(y) - inter.y) * np.sin(
                inter.heading
            )
            reach = inter.clearance + margin
            inside |= (np.abs(along) < reach) & (np.abs(across) < 60.0)
        return inside


def build_route(
    rng: np.random.Generator, first_straight: float, min_length: float, heading: float
) -> tuple[Path, list[tuple[float, float]]]:
    """A route from the origin: a long first straight, then turns and curves.

    Returns the path and the (start, end) arc lengths of its straight pieces,
    where intersections may be placed.
    """
    pieces: list[tuple[float, float]] = [(first_straight, 0.0)]
    straights = [(0.0, first_straight)]
    length = first_straight
    while length < min_length:
        if rng.random() < 0.5:
            radius = rng.uniform(20.0, 30.0)  # a turn at a junction
            angle = np.pi / 2
        else:
            radius = rng.uniform(70.0, 160.0)  # a bend in the road
            angle = np.radians(rng.uniform(12.0, 35.0))
        side = rng.choice([-1.0, 1.0])
        pieces.append((radius * angle, side / radius))
        length += radius * angle
        straight = rng.uniform(60.0, 160.0)
        pieces.append((straight, 0.0))
        straights.append((length, length + straight))
        length += straight
    return Path.build(0.0, 0.0, heading, pieces), straights


def make_intersection(route: Path, s: float, half_width: float) -> Intersection:
    """Intersection centered on the route at ``s`` (which must lie on a straight)."""
    x, y, heading = route.eval(s)
    return Intersection(float(s), float(x), float(y), float(heading) + np.pi / 2, half_width)
