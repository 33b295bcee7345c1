"""`syncl bench node`'s latency picture: per-frame receive -> publish latency and each stage,
as histograms, one colour per run (tracker, overlay), from the node's latency_log lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from syncl_ros.atomic import write_atomic

PANELS = ("receive_to_publish", "assemble", "encode", "decode", "tracker", "overlay")


def _label(run: dict[str, Any]) -> str:
    return f"{run['tracker']}, overlay {'on' if run['overlay'] else 'off'} ({len(run['samples'])} frames)"


def plot_latency(runs: Sequence[dict[str, Any]], path: Path) -> Path:
    """One histogram panel per stage (ms, shared bins per panel); a panel no run measured says so."""
    fig = Figure(figsize=(12, 6.5))
    FigureCanvasAgg(fig)  # a bare Agg figure: no pyplot state
    axes = fig.subplots(2, 3).ravel()
    for ax, stage in zip(axes, PANELS, strict=True):
        values = [np.array([s[stage] for s in r["samples"] if stage in s]) for r in runs]
        measured = [v for v in values if len(v)]
        ax.set_title(stage.replace("_", " "))
        ax.set_xlabel("ms")
        if not measured:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            continue
        bins = np.linspace(0.0, max(float(v.max()) for v in measured) * 1.05 + 1e-3, 40)
        for i, (run, v) in enumerate(zip(runs, values, strict=True)):
            if len(v):  # one colour per run in every panel
                ax.hist(
                    v, bins=bins, alpha=0.5, color=f"C{i}", label=f"{_label(run)}: p50 {np.median(v):.1f}"
                )
        ax.legend(fontsize=7)
    fig.suptitle("syncl bench node: per-frame latency (node's latency_log)")
    fig.tight_layout()

    def save(f: Any) -> None:
        fig.savefig(f, format="png", dpi=110)

    return write_atomic(path, save)
