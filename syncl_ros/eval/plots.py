"""Pictures of a tracking evaluation: per-class AMOTA bars and a bird's-eye view of one scene.

Drawing only; every number shown comes from the metrics dict the devkit produced.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from numpy.typing import NDArray
from nuscenes.eval.tracking.utils import category_to_tracking_name
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from syncl_ros.eval.tracking import EvalError, tracking_config

DPI = 130


def _figure(width: float, height: float) -> Figure:
    # A bare Figure on an Agg canvas: no pyplot, so no global backend or
    # figure registry is touched (safe in headless nodes and threads).
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")


# ------------------------------------------------------------ class AMOTA


def plot_class_amota(metrics: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Bar chart of AMOTA per tracking class, with the overall AMOTA as a dashed line.

    `metrics` is the dict evaluate_tracking returns. Classes without ground
    truth (AMOTA None) get no bar, only an "no GT" mark, so a zero is never
    confused with "not scored".
    """
    cfg = tracking_config()
    classes = list(cfg.class_names)
    values = [metrics["per_class"][c]["amota"] for c in classes]
    fig = _figure(7.5, 4.2)
    ax = fig.subplots()
    x = np.arange(len(classes))
    heights = [0.0 if v is None else v for v in values]
    colors = [cfg.tracking_colors[c] for c in classes]
    ax.bar(x, heights, color=colors, edgecolor="black", linewidth=0.6, width=0.65)
    for xi, v in zip(x, values, strict=True):
        text = "no GT" if v is None else f"{v:.3f}"
        ax.text(xi, (0 if v is None else max(v, 0)) + 0.02, text, ha="center", va="bottom", fontsize=9)
    overall = metrics["overall"]["amota"]
    if overall is not None:
        ax.axhline(
            overall, color="black", linestyle="--", linewidth=1.2, label=f"overall AMOTA {overall:.3f}"
        )
        ax.legend(loc="upper left", fontsize=9)
    ax.set_xticks(x, [cfg.pretty_tracking_names[c] for c in classes])
    ax.set_ylim(0, 1.25)  # headroom for the value labels and the legend above full bars
    ax.set_ylabel("AMOTA (higher is better)")
    split = metrics.get("split")
    ax.set_title("AMOTA per class" + (f" — split {split}" if split else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    _save(fig, path)


# --------------------------------------------------------------------- BEV


@dataclass
class Track:
    """One object's path through a scene: per key frame index, its box."""

    frames: list[int] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)

    def add(
        self, frame: int, translation: Sequence[float], size: Sequence[float], rot: Sequence[float]
    ) -> None:
        self.frames.append(frame)
        self.boxes.append(Box(list(translation), list(size), Quaternion(list(rot))))

    def xy(self) -> NDArray[np.float64]:
        return np.array([b.center[:2] for b in self.boxes])


def _scene_by_name(nusc: Any, scene_name: str) -> dict[str, Any]:
    for scene in nusc.scene:
        if scene["name"] == scene_name:
            return dict(scene)
    raise EvalError(f"scene {scene_name!r} is not in the dataset")


def _scene_samples(nusc: Any, scene: Mapping[str, Any]) -> list[dict[str, Any]]:
    samples, token = [], scene["first_sample_token"]
    while token:
        sample = nusc.get("sample", token)
        samples.append(sample)
        token = sample["next"]
    return samples


def _ego_xy(nusc: Any, samples: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
    points = []
    for sample in samples:
        # Any key-frame sensor carries the ego pose; prefer the lidar, the devkit's reference.
        channel = "LIDAR_TOP" if "LIDAR_TOP" in sample["data"] else next(iter(sample["data"]), None)
        if channel is None:
            continue
        pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"][channel])["ego_pose_token"])
        points.append(pose["translation"][:2])
    return np.array(points).reshape(-1, 2)


def _gt_tracks(nusc: Any, samples: Sequence[Mapping[str, Any]]) -> dict[str, Track]:
    tracks: dict[str, Track] = {}
    for k, sample in enumerate(samples):
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            if category_to_tracking_name(ann["category_name"]) is None:
                continue  # not a tracking class: not scored, not drawn
            track = tracks.setdefault(ann["instance_token"], Track())
            track.add(k, ann["translation"], ann["size"], ann["rotation"])
    return tracks


def _pred_tracks(results: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]) -> dict[str, Track]:
    boxes_of = results.get("results", results)  # the whole JSON or just its "results" mapping
    tracks: dict[str, Track] = {}
    for k, sample in enumerate(samples):
        for box in boxes_of.get(sample["token"], []):
            track = tracks.setdefault(str(box["tracking_id"]), Track())
            track.add(k, box["translation"], box["size"], box["rotation"])
    return tracks


def track_colors(ids: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A distinct colour per id: hues a golden-ratio step apart stay far from their neighbours."""
    colors = {}
    for i, track_id in enumerate(ids):
        hue = (0.61803398875 * i) % 1.0
        value = 0.85 if i % 2 == 0 else 0.65  # alternate brightness to separate similar hues further
        colors[track_id] = colorsys.hsv_to_rgb(hue, 0.8, value)
    return colors


def _key_frames(n_frames: int, count: int) -> list[int]:
    return sorted({round(v) for v in np.linspace(0, n_frames - 1, max(count, 1))})


def _draw_box(ax: Axes, box: Box, color: Any, alpha: float, linewidth: float = 1.2) -> None:
    corners = box.bottom_corners()[:2]  # 2x4, the first two are the front corners
    ring = np.concatenate([corners, corners[:, :1]], axis=1)
    ax.plot(ring[0], ring[1], color=color, alpha=alpha, linewidth=linewidth)
    front = corners[:, :2].mean(axis=1)
    ax.plot(
        [box.center[0], front[0]], [box.center[1], front[1]], color=color, alpha=alpha, linewidth=linewidth
    )


def _draw_tracks(
    ax: Axes,
    tracks: Mapping[str, Track],
    colors: Mapping[str, Any],
    key_frames: Sequence[int],
    label_ids: bool,
) -> None:
    last = max(key_frames) if key_frames else 0
    for track_id, track in tracks.items():
        color = colors[track_id]
        xy = track.xy()
        ax.plot(xy[:, 0], xy[:, 1], "-", color=color, linewidth=1.6, marker=".", markersize=4)
        ax.plot(xy[0, 0], xy[0, 1], "o", color=color, markersize=5, markerfacecolor="white")
        for frame, box in zip(track.frames, track.boxes, strict=True):
            if frame in key_frames:
                # Older key frames fainter, so the direction of travel reads at a glance.
                _draw_box(ax, box, color, alpha=0.35 + 0.65 * frame / max(last, 1))
        if label_ids:
            ax.annotate(track_id, xy[-1], textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)


def _short_ids(tracks: Mapping[str, Track], max_tracks: int = 30, max_len: int = 6) -> bool:
    # Id labels help when ids are short counters; long tokens or crowds only bury the tracks.
    return len(tracks) <= max_tracks and all(len(t) <= max_len for t in tracks)


def _draw_reference(ax: Axes, tracks: Mapping[str, Track]) -> None:
    # Ground truth under the tracker's paths, in grey, to show where they should have been.
    for track in tracks.values():
        xy = track.xy()
        ax.plot(xy[:, 0], xy[:, 1], "-", color="0.6", linewidth=4, alpha=0.35, solid_capstyle="round")


def _draw_ego(ax: Axes, ego: NDArray[np.float64]) -> None:
    if len(ego) == 0:
        return
    ax.plot(ego[:, 0], ego[:, 1], "-", color="black", linewidth=2.2)
    ax.plot(ego[0, 0], ego[0, 1], "s", color="black", markersize=6)
    if len(ego) > 1:
        ax.annotate(
            "", xy=ego[-1], xytext=ego[-2], arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 2}
        )


def _bounds(parts: Sequence[NDArray[np.float64]], margin: float = 6.0) -> tuple[float, float, float, float]:
    points = np.concatenate([p.reshape(-1, 2) for p in parts if p.size], axis=0)
    lo, hi = points.min(axis=0) - margin, points.max(axis=0) + margin
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    return centre[0] - half[0], centre[0] + half[0], centre[1] - half[1], centre[1] + half[1]


def _legend_handles(key_frames: Sequence[int]) -> list[Any]:
    handles: list[Any] = [
        Line2D([], [], color="black", linewidth=2.2, marker="s", markersize=5, label="ego path (start ■)"),
        Line2D([], [], color="tab:blue", marker=".", label="track (one colour per id)"),
        Line2D(
            [], [], color="tab:blue", marker="o", markerfacecolor="white", linestyle="", label="track start"
        ),
        Patch(facecolor="none", edgecolor="tab:blue", label=f"box at key frames {list(key_frames)}"),
        Line2D([], [], color="0.6", linewidth=4, alpha=0.5, label="ground truth (right: reference)"),
    ]
    return handles


def _metrics_line(metrics: Mapping[str, Any] | None) -> str:
    if not metrics:
        return ""

    def fmt(key: str, spec: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else format(value, spec)

    return (
        f"\nscene metrics: AMOTA {fmt('amota', '.3f')} · AMOTP {fmt('amotp', '.3f')} m · "
        f"MOTA {fmt('mota', '.3f')} · recall {fmt('recall', '.3f')} · IDS {fmt('ids', 'd')}"
    )


def plot_bev(
    nusc: Any,
    results: Mapping[str, Any],
    scene_name: str,
    path: str | os.PathLike[str],
    metrics: Mapping[str, Any] | None = None,
    key_frames: int = 4,
) -> None:
    """Bird's-eye view of one scene in the world frame: ground truth (left) vs tracks (right).

    `results` is a tracking results JSON (or just its "results" mapping);
    `metrics`, if given, are the scene's own metrics shown in the title.
    Both panels share axes; each track id has its own colour, boxes are drawn
    at `key_frames` evenly spaced key frames, and the ego path in black.
    """
    scene = _scene_by_name(nusc, scene_name)
    samples = _scene_samples(nusc, scene)
    ego, gt, pred = _ego_xy(nusc, samples), _gt_tracks(nusc, samples), _pred_tracks(results, samples)
    keys = _key_frames(len(samples), key_frames)
    x0, x1, y0, y1 = _bounds([ego] + [t.xy() for t in (*gt.values(), *pred.values())])

    # Size the panels to the scene's own aspect so equal-aspect axes fill them.
    panel_w = float(np.clip(7.0 * (x1 - x0) / max(y1 - y0, 1e-6), 4.5, 11.0))
    fig = _figure(2 * panel_w + 1.0, 7.5)
    ax_gt, ax_pred = fig.subplots(1, 2, sharex=True, sharey=True)
    _draw_tracks(ax_gt, gt, track_colors(list(gt)), keys, label_ids=False)
    _draw_reference(ax_pred, gt)
    _draw_tracks(ax_pred, pred, track_colors(list(pred)), keys, label_ids=_short_ids(pred))
    for ax, title in (
        (ax_gt, f"ground truth: {len(gt)} objects"),
        (ax_pred, f"tracker: {len(pred)} track ids"),
    ):
        _draw_ego(ax, ego)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(title)
        ax.set_xlabel("x, world frame (m)")
        ax.grid(alpha=0.3)
    ax_gt.set_ylabel("y, world frame (m)")
    # One legend for both panels, below them, so it never hides a track.
    fig.legend(
        handles=_legend_handles(keys), loc="lower center", ncol=5, fontsize=9, bbox_to_anchor=(0.5, -0.02)
    )
    fig.suptitle(f"{scene_name}: {len(samples)} key frames" + _metrics_line(metrics), fontsize=12)
    _save(fig, path)
