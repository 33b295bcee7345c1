"""Rasterizer for the synthetic world: textured ground, sky and boxes with a per-pixel z-buffer.

Conventions: ``K`` is a 3x3 pinhole matrix, ``world_to_cam`` a 4x4 matrix
into the camera's optical frame (z forward, x right, y down); pixel (u, v)
has its center at integer coordinates. Box faces are clipped against the
near plane and the image borders in 3D before they are filled, and every
face pixel carries the exact inverse depth of its plane, so occlusion is
resolved per pixel whatever the drawing order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.boxes import corners
from syncl_ros.data.synth import appearance
from syncl_ros.data.synth.ground import TERRAIN_RGB, GroundTexture

NEAR = 0.05  # near clipping plane (m)
FOG_START, FOG_END = 70.0, 220.0  # optical depths where haze starts and where it is complete (m)
HAZE = np.array([196, 206, 218], dtype=np.float32)  # horizon and fog colour
ZENITH = np.array([92, 140, 205], dtype=np.float32)
SHADOW = 0.55  # ground brightness under an object's shadow
_SHIFT = 4  # sub-pixel bits for cv2 polygon filling

# Faces by corner indices of boxes.corners(): (polygon, origin, along-a, along-h, kind).
# Polygons wind so that their normals point out of the box.
_FACES = (
    ((3, 0, 4, 7), 3, 0, 7, appearance.FRONT),
    ((1, 2, 6, 5), 2, 1, 6, appearance.BACK),
    ((0, 1, 5, 4), 1, 0, 5, appearance.LEFT),
    ((2, 3, 7, 6), 2, 3, 6, appearance.RIGHT),
    ((4, 5, 6, 7), 5, 4, 6, appearance.TOP),
)


@dataclass
class Frame:
    """A rendered view: colours, instance ids (-1 background) and inverse depth (0 background)."""

    rgb: NDArray[np.uint8]  # (H, W, 3) uint8
    instance: NDArray[np.int32]  # (H, W) int32
    inv_depth: NDArray[np.float32]  # (H, W) float32, 1 / optical depth
    alone: dict[int, int]  # pixels each drawn object covers when nothing occludes it

    def visible_pixels(self) -> dict[int, int]:
        """Pixels of each instance in the final image."""
        # A bincount over the ids is linear; np.unique sorts every pixel (a quarter of a scene's rendering).
        counts = np.bincount(self.instance[self.instance >= 0])  # empty where nothing is drawn
        return {int(i): int(counts[i]) for i in np.flatnonzero(counts)}


def _frustum_planes(K: NDArray[np.float64], width: int, height: int) -> NDArray[np.float64]:
    """(5, 3) normals n with n . X >= 0 inside (planes through the optical center), plus near separately.

    Sides sit half a pixel outside the border so that clipped polygons
    still cover the outermost pixel centers.
    """
    k0, k1, k2 = K[0], K[1], K[2]
    return np.array([k0 + 0.5 * k2, (width - 0.5) * k2 - k0, k1 + 0.5 * k2, (height - 0.5) * k2 - k1])


def _clip_polygon(
    poly: NDArray[np.float64], normal: NDArray[np.float64], offset: float
) -> NDArray[np.float64]:
    """Sutherland-Hodgman: the part of a convex polygon (n, 3) with normal . X + offset >= 0."""
    dist = poly @ normal + offset
    if np.all(dist >= 0):
        return poly
    if np.all(dist < 0):
        return poly[:0]
    out = []
    n = len(poly)
    for i in range(n):
        j = (i + 1) % n
        if dist[i] >= 0:
            out.append(poly[i])
        if (dist[i] >= 0) != (dist[j] >= 0):
            t = dist[i] / (dist[i] - dist[j])
            out.append(poly[i] + t * (poly[j] - poly[i]))
    return np.array(out)


def clip_to_view(
    poly: NDArray[np.float64], K: NDArray[np.float64], width: int, height: int
) -> NDArray[np.float64]:
    """Clip a convex camera-frame polygon to the view frustum (near plane and image borders)."""
    poly = _clip_polygon(poly, np.array([0.0, 0.0, 1.0]), -NEAR)
    for plane in _frustum_planes(K, width, height):
        if len(poly) < 3:
            break
        poly = _clip_polygon(poly, plane, 0.0)
    return poly


def _project(K: NDArray[np.float64], pts: NDArray[np.float64]) -> NDArray[np.float64]:
    p = pts @ K.T
    return p[:, :2] / p[:, 2:3]


@lru_cache(maxsize=32)
def _sky_layer(
    k_inv: tuple[float, ...], up: tuple[float, float, float], cam_height: float, width: int, height: int
) -> tuple[int, int, NDArray[np.float32], NDArray[np.float32]]:
    """Sky and haze of a camera; they depend neither on where it is nor on which way it turns.

    The world-up component of the viewing ray of pixel (u, v) is
    up . (u, v, 1) for a ray with unit optical depth. Returns the first row
    with any ground nearer than FOG_END, the first row whose ground is all
    nearer than FOG_START, and above that row the sky colours and the haze
    weight of each pixel.
    """
    u = np.arange(width, dtype=np.float64)
    v = np.arange(height, dtype=np.float64)
    rz = up[0] * u[None, :] + up[1] * v[:, None] + up[2]
    with np.errstate(divide="ignore"):
        depth = np.where(rz < 0, cam_height / -np.minimum(rz, -1e-12), np.inf)
    weight = np.clip((depth - FOG_START) / (FOG_END - FOG_START), 0.0, 1.0)
    hazy_rows = np.flatnonzero(weight.max(axis=1) > 0)
    clear_from = int(hazy_rows[-1] + 1) if len(hazy_rows) else 0
    ground_rows = np.flatnonzero(weight.min(axis=1) < 1)
    ground_from = int(ground_rows[0]) if len(ground_rows) else height
    # Sky colour from the sine of the ray elevation (rays have unit optical depth).
    ki = np.asarray(k_inv).reshape(3, 3)
    ray_x = ki[0, 0] * u[None, :] + ki[0, 1] * v[:clear_from, None] + ki[0, 2]
    ray_y = ki[1, 0] * u[None, :] + ki[1, 1] * v[:clear_from, None] + ki[1, 2]
    norm = np.sqrt(ray_x**2 + ray_y**2 + 1.0)
    k = np.clip(rz[:clear_from] / norm / 0.45, 0.0, 1.0)[..., None] ** 0.8
    sky = (HAZE * (1.0 - k) + ZENITH * k).astype(np.float32)
    w = weight[:clear_from, :, None].astype(np.float32)
    sky.setflags(write=False)
    w.setflags(write=False)
    return ground_from, clear_from, sky, w


def _key(values: ArrayLike) -> tuple[float, ...]:
    """Hashable, rounding-stable cache key of float values."""
    return tuple(float(round(x, 9)) for x in np.asarray(values, dtype=np.float64).ravel())


def _camera_sky(
    k_inv: NDArray[np.float64], cam_to_world: NDArray[np.float64], width: int, height: int
) -> tuple[int, int, NDArray[np.float32], NDArray[np.float32]]:
    """Cached sky layer of a camera (see _sky_layer)."""
    up = _key((cam_to_world[:3, :3] @ k_inv)[2])
    return _sky_layer(_key(k_inv), (up[0], up[1], up[2]), round(float(cam_to_world[2, 3]), 9), width, height)


def prepare(K: NDArray[np.float64], world_to_cam: NDArray[np.float64], width: int, height: int) -> None:
    """Precompute what a camera's renders share (call before forking workers)."""
    _camera_sky(np.linalg.inv(K), np.linalg.inv(world_to_cam), width, height)


def _background(
    K: NDArray[np.float64],
    world_to_cam: NDArray[np.float64],
    width: int,
    height: int,
    ground: GroundTexture | None,
) -> NDArray[np.uint8]:
    """Ground texture mapped onto z = 0 by a homography, hazed with distance, under a sky gradient."""
    cam_to_world = np.linalg.inv(world_to_cam)
    center = cam_to_world[:3, 3]
    k_inv = np.linalg.inv(K)
    ray = cam_to_world[:3, :3] @ k_inv  # pixel (u, v, 1) -> world ray with unit optical depth
    cam_height = float(center[2])
    ground_from, clear_from, sky, weight = _camera_sky(k_inv, cam_to_world, width, height)
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    if ground_from < height:
        # Homogeneous ground point of ray r: (c_xy r_z - c_z r_xy, r_z).
        meet = np.array([[-cam_height, 0.0, center[0]], [0.0, -cam_height, center[1]], [0.0, 0.0, 1.0]])
        shift = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, ground_from], [0.0, 0.0, 1.0]])
        if ground is None:
            rgb[ground_from:] = TERRAIN_RGB
        else:
            homography = ground.world_to_texel() @ meet @ ray @ shift
            rgb[ground_from:] = cv2.warpPerspective(
                ground.image,
                homography,
                (width, height - ground_from),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=TERRAIN_RGB,
            )
    rgb[:ground_from] = sky[:ground_from].astype(np.uint8)
    if clear_from > ground_from:
        band = rgb[ground_from:clear_from].astype(np.float32)
        w = weight[ground_from:clear_from]
        rgb[ground_from:clear_from] = (band * (1.0 - w) + sky[ground_from:clear_from] * w).astype(np.uint8)
    return rgb


def _shadows(
    rgb: NDArray[np.uint8],
    K: NDArray[np.float64],
    rot: NDArray[np.float64],
    trans: NDArray[np.float64],
    corners_w: NDArray[np.float64],
    sun: NDArray[np.float64],
) -> None:
    """Darken the ground under boxes (N, 8, 3) and along the sun direction: it shows they stand there."""
    height, width = rgb.shape[:2]
    mask = np.zeros((height, width), dtype=np.uint8)
    for box_corners in corners_w:
        foot = box_corners[:4, :2]
        cast = -sun[:2] / max(sun[2], 0.3) * (box_corners[4, 2] - box_corners[0, 2]) * 0.6
        hull = cv2.convexHull(np.concatenate([foot, foot + cast]).astype(np.float32)).reshape(-1, 2)
        poly = np.concatenate([hull.astype(np.float64), np.zeros((len(hull), 1))], axis=1) @ rot.T + trans
        poly = clip_to_view(poly, K, width, height)
        if len(poly) >= 3:
            pts = np.round(_project(K, poly) * (1 << _SHIFT)).astype(np.int32)
            cv2.fillConvexPoly(mask, pts, (1,), cv2.LINE_8, _SHIFT)
    x, y, w, h = cv2.boundingRect(mask)
    if w and h:
        view = rgb[y : y + h, x : x + w]
        dark = cv2.convertScaleAbs(view, alpha=SHADOW)
        np.copyto(view, dark, where=mask[y : y + h, x : x + w, None].astype(bool))


def _visible(cam_corners: NDArray[np.float64], planes: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Boxes (N, 8, 3) not entirely outside one frustum plane."""
    outside_near: NDArray[np.bool_] = np.all(cam_corners[..., 2] < NEAR, axis=1)
    side = cam_corners @ planes.T  # (N, 8, 4)
    outside_side: NDArray[np.bool_] = np.any(np.all(side < 0, axis=1), axis=1)
    return ~(outside_near | outside_side)


def _cross(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _affine_grid(
    coef: NDArray[np.float64], u: NDArray[np.float32], v: NDArray[np.float32]
) -> NDArray[np.float32]:
    """coef . (u, v, 1) over the grid of columns u and rows v (float32)."""
    return (np.float32(coef[0]) * u)[None, :] + (np.float32(coef[1]) * v + np.float32(coef[2]))[:, None]


def _draw_box(
    frame: Frame,
    K: NDArray[np.float64],
    k_inv: NDArray[np.float64],
    cam: NDArray[np.float64],
    box: NDArray[np.float64],
    cls: int,
    inst: int,
    shades: NDArray[np.float64],
    seed: int,
) -> None:
    """Z-buffered fill of the camera-facing faces of one box (corners ``cam`` in the camera frame)."""
    height, width = frame.instance.shape
    faces = []
    for polygon, origin, a_end, h_end, kind in _FACES:
        pts = cam[list(polygon)]
        normal = _cross(pts[1] - pts[0], pts[3] - pts[0])
        # Back-face culling: the camera (origin) must lie on the outer side.
        if normal @ -pts[0] <= 1e-12:
            continue
        clipped = clip_to_view(pts, K, width, height)
        if len(clipped) >= 3:
            faces.append((_project(K, clipped), normal, origin, a_end, h_end, kind))
    if not faces:
        return
    all_uv = np.concatenate([f[0] for f in faces])
    x0, y0 = np.maximum(np.floor(all_uv.min(axis=0)).astype(int), 0)
    x1 = min(int(np.ceil(all_uv[:, 0].max())) + 1, width)
    y1 = min(int(np.ceil(all_uv[:, 1].max())) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return
    # One canvas for the whole box: front faces of a convex body tile its
    # silhouette, so the union is what the object would cover alone.
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    for k, face in enumerate(faces):
        pts_i = np.round((face[0] - [x0, y0]) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillConvexPoly(canvas, pts_i, (k + 1,), cv2.LINE_8, _SHIFT)
    frame.alone[inst] = int(np.count_nonzero(canvas))
    pal = appearance.palette(cls, inst, seed)
    for k, (uv, normal, origin, a_end, h_end, kind) in enumerate(faces):
        fx0, fy0 = np.maximum(np.floor(uv.min(axis=0)).astype(int), [x0, y0])
        fx1 = min(int(np.ceil(uv[:, 0].max())) + 1, x1)
        fy1 = min(int(np.ceil(uv[:, 1].max())) + 1, y1)
        if fx1 <= fx0 or fy1 <= fy0:
            continue
        mine = canvas[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] == k + 1
        u = np.arange(fx0, fx1, dtype=np.float32)
        v = np.arange(fy0, fy1, dtype=np.float32)
        # Plane n . X = delta; along the ray X = z K^-1 (u, v, 1): 1/z = (n K^-1 / delta) . (u, v, 1).
        o = cam[origin]
        inv = _affine_grid((normal @ k_inv) / (normal @ o), u, v)
        zb = frame.inv_depth[fy0:fy1, fx0:fx1]
        win = mine & (inv > zb)
        if not win.any():
            continue
        # Face coordinates are a projective function of the pixel: with 1/z = G . p,
        # a = (E_a . p) / (G . p) - c_a. So the face's slot table maps onto the
        # image by one homography, exact under perspective.
        e_a, e_h = cam[a_end] - o, cam[h_end] - o
        g = (normal @ k_inv) / (normal @ o)
        to_a = (e_a @ k_inv - (o @ e_a) * g) / (e_a @ e_a)
        to_h = (e_h @ k_inv - (o @ e_h) * g) / (e_h @ e_h)
        table = appearance.slot_table(cls, appearance.is_riderless(cls, float(box[5])), kind)
        tex_h, tex_w = table.shape
        # Texel centers at (index + 0.5) / size; the bbox starts at pixel (fx0, fy0).
        homography = np.stack([tex_w * to_a - 0.5 * g, tex_h * to_h - 0.5 * g, g]) @ np.array(
            [[1.0, 0.0, fx0], [0.0, 1.0, fy0], [0.0, 0.0, 1.0]]
        )
        slots = cv2.warpPerspective(
            table,
            homography,
            (fx1 - fx0, fy1 - fy0),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        shaded = np.clip(pal * shades[kind], 0, 255)
        z_far = 1.0 / float(inv[win].min())
        if z_far > FOG_START:
            z = 1.0 / np.maximum(inv, np.float32(1e-6))
            fog = np.clip((z - FOG_START) / (FOG_END - FOG_START), 0.0, 1.0)[..., None]
            colour = (shaded[slots] * (1.0 - fog) + HAZE * fog).astype(np.uint8)
        else:
            colour = shaded.astype(np.uint8)[slots]
        np.copyto(zb, inv, where=win)
        np.copyto(frame.rgb[fy0:fy1, fx0:fx1], colour, where=win[..., None])
        np.copyto(frame.instance[fy0:fy1, fx0:fx1], np.int32(inst), where=win)


def _face_shades(yaw: float, sun: NDArray[np.float64]) -> NDArray[np.float64]:
    """Lambert shading (ambient + sun) of the five drawn faces of a box with heading ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    normals = np.array([[c, s, 0.0], [-c, -s, 0.0], [-s, c, 0.0], [s, -c, 0.0], [0.0, 0.0, 1.0]])
    return np.asarray(0.5 + 0.5 * np.clip(normals @ sun, 0.0, 1.0))


def rasterize(
    K: ArrayLike,
    world_to_cam: ArrayLike,
    width: int,
    height: int,
    boxes_world: ArrayLike,
    classes: NDArray[np.int64],
    ids: NDArray[np.int64],
    ground: GroundTexture | None = None,
    sun: ArrayLike | None = None,
    seed: int = 0,
) -> Frame:
    """Render boxes (N, 9) standing on the textured ground; see :func:`render`."""
    K = np.asarray(K, dtype=np.float64)
    world_to_cam = np.asarray(world_to_cam, dtype=np.float64)
    sun_dir = np.array([0.3, 0.4, 0.87]) if sun is None else np.asarray(sun, dtype=np.float64)
    sun_dir = sun_dir / np.linalg.norm(sun_dir)
    frame = Frame(
        _background(K, world_to_cam, width, height, ground),
        np.full((height, width), -1, dtype=np.int32),
        np.zeros((height, width), dtype=np.float32),
        {},
    )
    boxes_world = np.asarray(boxes_world, dtype=np.float64).reshape(-1, 9)
    if len(boxes_world) == 0:
        return frame
    rot, trans = world_to_cam[:3, :3], world_to_cam[:3, 3]
    world_corners = corners(boxes_world)
    cam_corners = world_corners @ rot.T + trans
    keep = np.flatnonzero(_visible(cam_corners, _frustum_planes(K, width, height)))
    # Near to far: the z-test then rejects most hidden pixels before they are shaded.
    order = keep[np.argsort(np.linalg.norm(boxes_world[keep, :3] - (-rot.T @ trans), axis=1))]
    _shadows(frame.rgb, K, rot, trans, world_corners[order], sun_dir)
    k_inv = np.linalg.inv(K)
    for i in order:
        shades = _face_shades(float(boxes_world[i, 6]), sun_dir)
        _draw_box(frame, K, k_inv, cam_corners[i], boxes_world[i], int(classes[i]), int(ids[i]), shades, seed)
    return frame


def render(
    K: ArrayLike,
    world_to_cam: ArrayLike,
    width: int,
    height: int,
    boxes_world: ArrayLike,
    classes: NDArray[np.int64],
    ids: NDArray[np.int64],
    ground: GroundTexture | None = None,
    sun: ArrayLike | None = None,
    seed: int = 0,
) -> tuple[NDArray[np.uint8], NDArray[np.int32]]:
    """RGB image (H, W, 3) uint8 and instance ids (H, W) int32 (-1 background) of one camera.

    ``boxes_world`` are (N, 9) [x, y, z, l, w, h, yaw, vx, vy] on the ground
    plane, ``classes`` index :data:`syncl_ros.data.synth.actors.CLASSES`,
    ``ids`` label the instance buffer and pick each object's colours
    (together with ``seed``). Without ``ground`` the ground is plain terrain.
    """
    frame = rasterize(K, world_to_cam, width, height, boxes_world, classes, ids, ground, sun, seed)
    return frame.rgb, frame.instance
