"""Top-down texture of the ground (asphalt, markings, curbs, sidewalks, verge) for one scene.

The renderer maps this image onto the plane z = 0 with one homography per
camera, so painting it once per scene makes the ground cost independent of
the scene content.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from syncl_ros.data.synth.layout import Intersection, Street
from syncl_ros.data.synth.world import Scene

RESOLUTION = 0.08  # metres per texel; markings are at least two texels wide
MARGIN = 110.0  # painted distance around the ego's trajectory (m); fog hides what lies beyond
_SHIFT = 3  # sub-pixel bits for cv2 drawing

# Materials and their RGB colour and noise amplitude.
TERRAIN, SIDEWALK, ASPHALT, CURB, WHITE, YELLOW = range(6)
_COLOURS = np.array(
    [[96, 112, 72], [160, 158, 150], [82, 84, 88], [185, 184, 178], [225, 225, 218], [218, 178, 62]],
    dtype=np.int16,
)
_NOISE_GAIN = np.array([14, 8, 9, 5, 5, 5], dtype=np.int16)
TERRAIN_RGB = tuple(int(c) for c in _COLOURS[TERRAIN])


@dataclass(frozen=True)
class GroundTexture:
    """RGB texture (H, W, 3) covering x0 <= x < x0 + W * res, y0 <= y < y0 + H * res."""

    image: NDArray[np.uint8]
    x0: float
    y0: float
    res: float

    def world_to_texel(self) -> NDArray[np.float64]:
        """3x3 affine map from world (x, y, 1) to texel (column, row, 1); texel centers at integers."""
        return np.array(
            [
                [1.0 / self.res, 0.0, -self.x0 / self.res - 0.5],
                [0.0, 1.0 / self.res, -self.y0 / self.res - 0.5],
                [0.0, 0.0, 1.0],
            ]
        )


class _Painter:
    """Draws world-space polylines into the material map."""

    def __init__(self, material: NDArray[np.uint8], x0: float, y0: float, res: float) -> None:
        self.material, self.x0, self.y0, self.res = material, x0, y0, res

    def _pts(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int32]:
        scale = (1 << _SHIFT) / self.res
        xy: NDArray[np.float64] = np.stack([(x - self.x0) * scale, (y - self.y0) * scale], axis=1)
        return xy.astype(np.int32)

    def line(self, x: NDArray[np.float64], y: NDArray[np.float64], width: float, material: int) -> None:
        if len(x) < 2:
            return
        thickness = max(1, round(width / self.res))
        cv2.polylines(self.material, [self._pts(x, y)], False, (material,), thickness, cv2.LINE_8, _SHIFT)

    def polygon(self, x: NDArray[np.float64], y: NDArray[np.float64], material: int) -> None:
        cv2.fillPoly(self.material, [self._pts(x, y)], (material,), cv2.LINE_8, _SHIFT)


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Index ranges [a, b) of consecutive True values."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _outside_junctions(street: Street, s: NDArray[np.float64]) -> NDArray[np.bool_]:
    keep = np.ones(len(s), dtype=bool)
    for inter in street.intersections:
        keep &= np.abs(s - inter.s) > inter.clearance
    return keep


def _route_marking(
    painter: _Painter,
    street: Street,
    s: NDArray[np.float64],
    offset: float,
    width: float,
    material: int,
    dash: float = 0.0,
) -> None:
    """A longitudinal marking at ``offset``; dashed with 1:2 dash:gap when ``dash`` > 0."""
    keep = _outside_junctions(street, s)
    if dash > 0.0:
        keep &= np.mod(s, 3.0 * dash) < dash
    x, y, _ = street.route.offset(offset).eval(s)
    for a, b in _runs(keep):
        painter.line(x[a:b], y[a:b], width, material)


def _cross_axes(inter: Intersection) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Unit vectors along the cross road and along the route at an intersection."""
    along_cross = np.array([np.cos(inter.heading), np.sin(inter.heading)])
    return along_cross, np.array([along_cross[1], -along_cross[0]])


def _paint_materials(street: Street, painter: _Painter) -> None:
    layout = street.layout
    route = street.route
    s = np.arange(-200.0, route.total_length + 200.0, 0.5)
    cx, cy, _ = route.eval(s)
    outer = layout.road_half + layout.sidewalk
    reach = 150.0

    def cross_line(
        inter: Intersection, lateral: float, t0: float, t1: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        u, v = _cross_axes(inter)
        t = np.array([t0, t1])
        return inter.x + t * u[0] + lateral * v[0], inter.y + t * u[1] + lateral * v[1]

    # Order matters: later layers cover earlier ones where they overlap.
    painter.line(cx, cy, 2.0 * outer, SIDEWALK)
    for inter in street.intersections:
        painter.line(
            *cross_line(inter, 0.0, -reach, reach), 2.0 * (inter.half_width + layout.sidewalk), SIDEWALK
        )
    for side in (-1.0, 1.0):
        x, y, _ = route.offset(side * (layout.road_half + 0.15)).eval(s)
        painter.line(x, y, 0.3, CURB)
        for inter in street.intersections:
            painter.line(*cross_line(inter, side * (inter.half_width + 0.15), -reach, reach), 0.3, CURB)
    painter.line(cx, cy, 2.0 * layout.road_half, ASPHALT)
    for inter in street.intersections:
        painter.line(*cross_line(inter, 0.0, -reach, reach), 2.0 * inter.half_width, ASPHALT)

    # Route markings: double yellow center, dashed lane dividers, solid edge
    # lines at the bike lane, dashed parking boundary; all stop at junctions.
    for side in (-1.0, 1.0):
        _route_marking(painter, street, s, side * 0.2, 0.16, YELLOW)
        for lane in range(1, layout.lanes):
            _route_marking(painter, street, s, side * lane * layout.lane_width, 0.16, WHITE, dash=3.0)
        _route_marking(painter, street, s, side * layout.lanes * layout.lane_width, 0.2, WHITE)
        _route_marking(painter, street, s, side * layout.carriageway, 0.16, WHITE, dash=1.0)

    for inter in street.intersections:
        # Cross road center line, outside the route's carriageway.
        for t0, t1 in ((-reach, -layout.road_half), (layout.road_half, reach)):
            painter.line(*cross_line(inter, 0.0, t0, t1), 0.16, YELLOW)
        u, v = _cross_axes(inter)
        for cw in inter.crosswalk_offsets:
            # Zebra stripes run along the route, spaced across the street.
            for lateral in np.arange(-layout.road_half + 0.5, layout.road_half - 0.2, 1.0):
                center = np.array([inter.x, inter.y]) + cw * v + lateral * u
                du, dv = 0.25 * u, 0.5 * inter.crosswalk * v
                rect = np.array([center - du - dv, center + du - dv, center + du + dv, center - du + dv])
                painter.polygon(rect[:, 0], rect[:, 1], WHITE)
            stop = cw + np.sign(cw) * (0.5 * inter.crosswalk + 0.6)
            # Stop line across the lanes that approach this side of the junction.
            lanes_side = -1.0 if cw < 0 else 1.0
            x, y = cross_line(inter, stop, 0.0, lanes_side * layout.carriageway)
            painter.line(x, y, 0.4, WHITE)


def _noise(rng: np.random.Generator, shape: tuple[int, int]) -> NDArray[np.int16]:
    """Grain plus blotches, int16 roughly in [-2, 2] units times 8."""
    grain = rng.integers(-8, 9, size=shape, dtype=np.int16)
    coarse_shape = (shape[0] // 24 + 2, shape[1] // 24 + 2)
    coarse = rng.normal(0.0, 6.0, size=coarse_shape).astype(np.float32)
    blotch = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return (grain + blotch) // 2


def paint_ground(scene: Scene, res: float = RESOLUTION) -> GroundTexture:
    """Paint the ground around the ego's whole trajectory."""
    times = np.linspace(-1.0, scene.duration_ns / 1e9 + 1.0, 50)
    ex, ey, _, _ = scene.ego.state(times)
    x0, y0 = float(ex.min() - MARGIN), float(ey.min() - MARGIN)
    width = int(np.ceil((ex.max() + MARGIN - x0) / res))
    height = int(np.ceil((ey.max() + MARGIN - y0) / res))
    material = np.full((height, width), TERRAIN, dtype=np.uint8)
    _paint_materials(scene.street, _Painter(material, x0, y0, res))

    rng = np.random.default_rng([scene.seed, 0x67726F756E64])
    noise = _noise(rng, (height, width))
    image = np.empty((height, width, 3), dtype=np.uint8)
    # Row blocks keep the int16 temporaries small.
    for r0 in range(0, height, 512):
        mat = material[r0 : r0 + 512]
        shade = noise[r0 : r0 + 512] * _NOISE_GAIN[mat] // 8
        image[r0 : r0 + 512] = np.clip(_COLOURS[mat] + shade[..., None], 0, 255).astype(np.uint8)
    return GroundTexture(image, x0, y0, res)


_CACHE: weakref.WeakKeyDictionary[Scene, GroundTexture] = weakref.WeakKeyDictionary()


def ground_texture(scene: Scene) -> GroundTexture:
    """The scene's ground texture, painted on first use and kept while the scene lives."""
    texture = _CACHE.get(scene)
    if texture is None:
        texture = paint_ground(scene)
        _CACHE[scene] = texture
    return texture
