"""Rigid transforms, time interpolation and pinhole projection.

Conventions (REP-103): x forward, y left, z up in body frames such as
``base_link``; camera optical frames have z forward, x right, y down.
A :class:`Transform` maps points from a child frame into its parent frame:
``p_parent = R @ p_child + t``. Times are integer nanoseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyquaternion import Quaternion

# Optical frame axes (x right, y down, z forward) expressed in a body frame
# (x forward, y left, z up) for a camera looking straight ahead.
_OPTICAL_IN_BODY = np.array(
    [
        [0.0, 0.0, 1.0],
        [-1.0, 0.0, 0.0],
        [0.0, -1.0, 0.0],
    ]
)


def _nearest_rotation(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Closest proper rotation to ``m``; absorbs float noise from serialized matrices."""
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return np.asarray(r, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Transform:
    """Rigid transform from a child frame into a parent frame.

    Equality is not defined by value (float arrays); use :meth:`allclose`.
    """

    rotation: Quaternion
    translation: NDArray[np.float64]  # (3,), read-only; any (3,) array-like on construction

    def __post_init__(self) -> None:
        # Normalise and freeze so that a shared Transform can never be mutated.
        t = np.array(self.translation, dtype=np.float64).reshape(3)
        t.setflags(write=False)
        object.__setattr__(self, "translation", t)
        object.__setattr__(self, "rotation", Quaternion(self.rotation).normalised)

    @staticmethod
    def identity() -> Transform:
        return Transform(Quaternion(), np.zeros(3))

    @staticmethod
    def from_matrix(m: ArrayLike) -> Transform:
        """From a 4x4 homogeneous matrix."""
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (4, 4):
            raise ValueError(f"expected a 4x4 matrix, got shape {m.shape}")
        return Transform(Quaternion(matrix=_nearest_rotation(m[:3, :3])), m[:3, 3])

    @staticmethod
    def from_tq(translation: Sequence[float], rotation_wxyz: Sequence[float]) -> Transform:
        """From a translation and a (w, x, y, z) quaternion, as stored by nuScenes."""
        return Transform(Quaternion(np.asarray(rotation_wxyz, dtype=np.float64)), np.asarray(translation))

    @staticmethod
    def from_xy_yaw(x: float, y: float, yaw: float, z: float = 0.0) -> Transform:
        """Planar pose: position and heading about z."""
        return Transform(yaw_quaternion(yaw), np.array([x, y, z]))

    def matrix(self) -> NDArray[np.float64]:
        m = np.eye(4)
        m[:3, :3] = self.rotation.rotation_matrix
        m[:3, 3] = self.translation
        return m

    def inverse(self) -> Transform:
        inv = self.rotation.inverse
        return Transform(inv, -inv.rotate(self.translation))

    def __matmul__(self, other: Transform) -> Transform:
        if not isinstance(other, Transform):
            return NotImplemented
        rotation = self.rotation * other.rotation
        return Transform(rotation, self.rotation.rotate(other.translation) + self.translation)

    def apply(self, points: ArrayLike) -> NDArray[np.float64]:
        """Map points (N,3) or (3,) from the child into the parent frame."""
        return self.rotate(points) + self.translation

    def rotate(self, vectors: ArrayLike) -> NDArray[np.float64]:
        """Rotate direction vectors (N,3) or (3,); translation does not apply."""
        v = np.asarray(vectors, dtype=np.float64)
        if v.shape[-1] != 3:
            raise ValueError(f"expected (..., 3) vectors, got shape {v.shape}")
        return np.asarray(v @ self.rotation.rotation_matrix.T)

    @property
    def yaw(self) -> float:
        """Heading of the child x axis in the parent xy plane (rad)."""
        return quaternion_yaw(self.rotation)

    def allclose(self, other: Transform, atol: float = 1e-9) -> bool:
        """Same rigid motion within ``atol`` (q and -q are the same rotation)."""
        return bool(np.allclose(self.matrix(), other.matrix(), atol=atol))

    def __repr__(self) -> str:
        t = np.array2string(self.translation, precision=4)
        q = np.array2string(self.rotation.elements, precision=4)
        return f"Transform(translation={t}, rotation_wxyz={q})"


def _slerp(q0: Quaternion, q1: Quaternion, amount: float) -> Quaternion:
    """Shortest-path slerp that, unlike pyquaternion's, does not clip ``amount`` to [0, 1]."""
    delta = q0.inverse * q1
    if delta.w < 0.0:
        delta = -delta
    angle = delta.angle
    if abs(angle) < 1e-12:
        return q0
    return q0 * Quaternion(axis=delta.axis, angle=angle * amount)


def interpolate(
    t0_ns: int, a: Transform, t1_ns: int, b: Transform, t_ns: int, max_extrapolation_ns: int = 0
) -> Transform:
    """Pose at ``t_ns`` between poses ``a`` at ``t0_ns`` and ``b`` at ``t1_ns``.

    Rotation is slerped and translation lerped. Times outside the stamps by
    more than ``max_extrapolation_ns`` raise, because extrapolated poses
    silently degrade tracking.
    """
    if t0_ns > t1_ns or (t0_ns == t1_ns and t_ns != t0_ns):
        raise ValueError(f"cannot interpolate to t={t_ns} ns from stamps t0={t0_ns} ns, t1={t1_ns} ns")
    if not t0_ns - max_extrapolation_ns <= t_ns <= t1_ns + max_extrapolation_ns:
        raise ValueError(
            f"t={t_ns} ns is outside [{t0_ns}, {t1_ns}] ns by more than the allowed {max_extrapolation_ns} ns"
        )
    if t0_ns == t1_ns:
        return a
    amount = (t_ns - t0_ns) / (t1_ns - t0_ns)
    translation = a.translation + amount * (b.translation - a.translation)
    return Transform(_slerp(a.rotation, b.rotation, amount), translation)


def relative_motion(ego_to_world_prev: Transform, ego_to_world_cur: Transform) -> Transform:
    """Maps points expressed in the previous ego frame into the current ego frame."""
    return ego_to_world_cur.inverse() @ ego_to_world_prev


def transform_points(T: Transform, points: ArrayLike) -> NDArray[np.float64]:
    """``T.apply`` as a function, for symmetry with :func:`transform_velocities`."""
    return T.apply(points)


def transform_velocities(T: Transform, vel: ArrayLike) -> NDArray[np.float64]:
    """Rotate velocities (N,2) or (N,3) (or a single one); planar input gets vz = 0."""
    v = np.asarray(vel, dtype=np.float64)
    width = v.shape[-1]
    if width not in (2, 3):
        raise ValueError(f"expected velocities of width 2 or 3, got shape {v.shape}")
    if width == 2:
        v = np.concatenate([v, np.zeros((*v.shape[:-1], 1))], axis=-1)
    return T.rotate(v)[..., :width]


def yaw_quaternion(yaw: float) -> Quaternion:
    """Rotation by ``yaw`` rad about z."""
    return Quaternion(axis=[0.0, 0.0, 1.0], angle=float(yaw))


def quaternion_yaw(q: Quaternion) -> float:
    """Heading of the rotated x axis in the xy plane, in (-pi, pi]."""
    r = q.rotation_matrix
    return math.atan2(r[1, 0], r[0, 0])


def _rot_x(a: float) -> NDArray[np.float64]:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> NDArray[np.float64]:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> NDArray[np.float64]:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def optical_to_body(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> Quaternion:
    """Orientation of a camera optical frame in ``base_link``.

    The camera looks along ``yaw`` (rad, left positive), tilted down by
    ``pitch`` (rad) and rolled by ``roll`` (rad, right-handed about the
    viewing direction, i.e. positive lowers the image's right side).
    """
    body = _rot_z(yaw) @ _rot_y(pitch) @ _rot_x(roll)
    return Quaternion(matrix=_nearest_rotation(body @ _OPTICAL_IN_BODY))


def image_transform(
    scale_x: float, scale_y: float, crop_x: float = 0.0, crop_y: float = 0.0
) -> NDArray[np.float64]:
    """3x3 map from a pixel of the original image to the resized-then-cropped image.

    Pixels scale as ``u' = scale_x * u - crop_x`` (no half-pixel shift), the
    convention used when resizing images for multi-view 3D detectors.
    """
    return np.array(
        [
            [scale_x, 0.0, -crop_x],
            [0.0, scale_y, -crop_y],
            [0.0, 0.0, 1.0],
        ]
    )


def scaled_intrinsics(
    K: ArrayLike, scale_x: float, scale_y: float, crop_x: float = 0.0, crop_y: float = 0.0
) -> NDArray[np.float64]:
    """Intrinsics of the image resized by (scale_x, scale_y) then cropped."""
    return image_transform(scale_x, scale_y, crop_x, crop_y) @ np.asarray(K, dtype=np.float64)


def ego_to_image(
    K: ArrayLike, cam_to_ego: Transform, img_aug: ArrayLike | None = None
) -> NDArray[np.float64]:
    """4x4 ``lidar2img``: ``[u*d, v*d, d, 1] = M @ [x, y, z, 1]`` for ego-frame points.

    ``d`` is the depth along the optical axis; ``img_aug`` is a 3x3 from
    :func:`image_transform` applied after the intrinsics.
    """
    intr = np.asarray(K, dtype=np.float64)
    if img_aug is not None:
        intr = np.asarray(img_aug, dtype=np.float64) @ intr
    m = np.eye(4)
    m[:3, :3] = intr
    return np.asarray(m @ cam_to_ego.inverse().matrix())


def project(
    lidar2img: ArrayLike, points: ArrayLike, eps: float = 1e-5
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Project (N,3) ego points to pixels (N,2) and depths (N,); uv is nan for depth <= eps."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    homo = np.concatenate([p, np.ones((len(p), 1))], axis=1) @ np.asarray(lidar2img, dtype=np.float64).T
    depth = homo[:, 2]
    valid = depth > eps
    uv = np.full((len(p), 2), np.nan)
    uv[valid] = homo[valid, :2] / depth[valid, None]
    return uv, depth
