"""A simulated 32-beam spinning lidar: nearest hit of each ray against the boxes and the ground.

The sweep is taken at one instant (no motion during the turn). Points are
returned in the lidar frame in the nuScenes ``.pcd.bin`` layout
(x, y, z, intensity, ring index as float32), with the id of the object each
point hit so that per-object counts respect occlusion by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.boxes import corners

BEAM_ELEVATIONS_DEG = np.linspace(-30.67, 10.67, 32)  # like the nuScenes HDL-32E
AZIMUTH_STEP_DEG = 0.3
MAX_RANGE = 70.0
RANGE_NOISE = 0.02  # m, standard deviation, clipped at 2.5 sigma so points stay near what they hit
# Return strength by class index (see actors.CLASSES), and of the ground.
CLASS_INTENSITY = np.array([40.0, 35.0, 38.0, 30.0, 18.0, 25.0, 15.0])
GROUND_INTENSITY = 10.0


@dataclass
class Sweep:
    points: NDArray[np.float32]  # (M, 5) float32: x, y, z, intensity, ring, in the lidar frame
    hit_ids: NDArray[np.int64]  # (M,) object id of each point, -1 for the ground

    def counts(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Number of points on each object of ``ids``."""
        hits = self.hit_ids[self.hit_ids >= 0]
        uniq, num = np.unique(hits, return_counts=True)
        lookup = dict(zip(uniq.tolist(), num.tolist(), strict=True))
        return np.array([lookup.get(int(i), 0) for i in ids], dtype=np.int64)


def ray_directions() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Unit ray directions (B, A, 3) in the lidar frame and the ring index (B, A) of each."""
    elev = np.radians(BEAM_ELEVATIONS_DEG)[:, None]
    azim = np.radians(np.arange(0.0, 360.0, AZIMUTH_STEP_DEG))[None, :]
    dirs = np.stack(
        [np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev) * np.ones_like(azim)], axis=-1
    )
    rings = np.broadcast_to(np.arange(len(BEAM_ELEVATIONS_DEG))[:, None], dirs.shape[:2])
    return dirs, rings


def _ray_box(
    origin: NDArray[np.float64], dirs: NDArray[np.float64], box: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Entry distance of rays (R, 3) from ``origin`` into box (9,), inf where they miss (slab test)."""
    c, s = np.cos(box[6]), np.sin(box[6])
    rot_t = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> box axes
    o = rot_t @ (origin - box[:3])
    d = dirs @ rot_t.T
    half = box[3:6] / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1, t2 = (-half - o) * inv, (half - o) * inv
    t_near = np.minimum(t1, t2).max(axis=1)
    t_far = np.maximum(t1, t2).min(axis=1)
    return np.where((t_near <= t_far) & (t_near > 0.0), t_near, np.inf)


def _candidate_rays(
    origin: NDArray[np.float64],
    lidar_rot: NDArray[np.float64],
    box: NDArray[np.float64],
    n_beams: int,
    n_cols: int,
) -> NDArray[np.int64] | None:
    """(beam, column) index ranges whose rays may hit the box, from its angular extent; None if none."""
    pts = (corners(box[None])[0] - origin) @ lidar_rot  # corners in the lidar frame
    horiz = np.hypot(pts[:, 0], pts[:, 1])
    if np.min(np.abs(pts[:, :2]).max(axis=1)) < 1e-6 or horiz.min() < 0.2:
        return None
    center_az = np.arctan2(pts[:, 1].mean(), pts[:, 0].mean())
    rel = (np.arctan2(pts[:, 1], pts[:, 0]) - center_az + np.pi) % (2 * np.pi) - np.pi
    if rel.max() - rel.min() > np.pi:  # surrounds the sensor: not a box it can see from outside
        return None
    step = np.radians(AZIMUTH_STEP_DEG)
    cols = np.arange(
        int(np.floor((center_az + rel.min()) / step)), int(np.ceil((center_az + rel.max()) / step)) + 1
    )
    # Elevation bounds: the extremes can lie inside an edge (a long box alongside),
    # so use the nearest and farthest horizontal distance of the footprint.
    c, s = np.cos(box[6]), np.sin(box[6])
    rel_xy = origin[:2] - box[:2]
    local = np.array([c * rel_xy[0] + s * rel_xy[1], -s * rel_xy[0] + c * rel_xy[1]])
    gap = np.maximum(np.abs(local) - box[3:5] / 2.0, 0.0)
    h_min, h_max = max(float(np.hypot(*gap)), 1e-3), float(horiz.max())
    dz_top = box[2] + box[5] / 2.0 - origin[2]
    dz_bot = box[2] - box[5] / 2.0 - origin[2]
    top = np.degrees(np.arctan2(dz_top, h_min if dz_top > 0 else h_max))
    bottom = np.degrees(np.arctan2(dz_bot, h_min if dz_bot < 0 else h_max))
    beams = np.flatnonzero((bottom - 1e-6 <= BEAM_ELEVATIONS_DEG) & (top + 1e-6 >= BEAM_ELEVATIONS_DEG))
    if len(beams) == 0:
        return None
    grid: NDArray[np.int64] = np.stack(np.meshgrid(beams, cols % n_cols, indexing="ij"), axis=-1)
    return grid.reshape(-1, 2)


def scan(
    lidar_to_world: NDArray[np.float64],
    boxes_world: ArrayLike,
    ids: NDArray[np.int64],
    classes: NDArray[np.int64],
    rng: np.random.Generator | None = None,
) -> Sweep:
    """One sweep from the lidar pose ``lidar_to_world`` (4x4) against boxes (N, 9) and the ground z = 0."""
    rot, origin = lidar_to_world[:3, :3], lidar_to_world[:3, 3]
    dirs_l, rings = ray_directions()
    n_beams, n_cols = rings.shape
    dirs_w = dirs_l @ rot.T
    # Ground first; boxes can only bring a hit nearer.
    with np.errstate(divide="ignore"):
        t_best = np.where(dirs_w[..., 2] < -1e-9, -origin[2] / dirs_w[..., 2], np.inf)
    t_best = np.where(t_best <= MAX_RANGE, t_best, np.inf)
    hit = np.full((n_beams, n_cols), -1, dtype=np.int64)
    hit_cls = np.full((n_beams, n_cols), -1, dtype=np.int64)
    boxes_world = np.asarray(boxes_world, dtype=np.float64).reshape(-1, 9)
    near = np.hypot(boxes_world[:, 0] - origin[0], boxes_world[:, 1] - origin[1]) < MAX_RANGE + 15.0
    for i in np.flatnonzero(near):
        rays = _candidate_rays(origin, rot, boxes_world[i], n_beams, n_cols)
        if rays is None:
            continue
        b, c = rays[:, 0], rays[:, 1]
        t = _ray_box(origin, dirs_w[b, c], boxes_world[i])
        closer = t < t_best[b, c]
        b, c = b[closer], c[closer]
        t_best[b, c] = t[closer]
        hit[b, c] = ids[i]
        hit_cls[b, c] = classes[i]
    valid = np.isfinite(t_best) & (t_best <= MAX_RANGE)
    t = t_best[valid]
    if rng is not None:
        t = t + np.clip(rng.normal(0.0, RANGE_NOISE, size=t.shape), -2.5 * RANGE_NOISE, 2.5 * RANGE_NOISE)
    xyz = dirs_l[valid] * t[:, None]
    cls = hit_cls[valid]
    intensity = np.where(cls >= 0, CLASS_INTENSITY[np.maximum(cls, 0)], GROUND_INTENSITY)
    if rng is not None:
        intensity = intensity * rng.uniform(0.8, 1.2, size=intensity.shape)
    points = np.concatenate([xyz, intensity[:, None], rings[valid][:, None]], axis=1).astype(np.float32)
    return Sweep(points, hit[valid])
