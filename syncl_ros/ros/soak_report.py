"""`syncl bench soak`'s figures and table from one run's raw records (ros/soak.py)."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.ros.soak_accounting import checks, fault_rows, node_values

MS = 1_000_000
# The node's defaults (sync_center_ms, a 12 Hz rig): an image's rig cycle is its stamp minus the
# mean capture offset, within half a camera period of the frame's stamp.
CENTER_NS = 25 * MS
TOLERANCE_NS = 41 * MS
ANCHOR = "CAM_FRONT"
RSS_LIMIT = 0.05  # the soak's memory budget after warm-up


def _thirds(values: list[float]) -> list[dict[str, float]]:
    """p50 / p95 (ms) of the first and last third of the run's frames, in processing order."""
    n = len(values) // 3
    parts = [values[:n], values[-n:]] if n else []
    return [{"p50": float(np.median(p)), "p95": float(np.percentile(p, 95)), "frames": len(p)} for p in parts]


def _rss(run: dict[str, Any], warmup_s: float) -> dict[str, Any]:
    """RSS after warm-up (first sample past it), at the end and its maximum from warm-up on."""
    samples = run["rss"]
    if not samples:
        return {}
    after = [rss for t, rss in samples if t >= run["began"] + warmup_s] or [samples[-1][1]]
    warm, end, peak = after[0], after[-1], max(after)
    return {
        "warmup_s": warmup_s,
        "after_warmup_mib": warm,
        "end_mib": end,
        "max_mib": peak,
        "end_growth": end / warm - 1.0,
        "max_growth": peak / warm - 1.0,
        "within_limit": peak <= warm * (1 + RSS_LIMIT) and end >= warm * (1 - RSS_LIMIT),
        # (s since the first frame, MiB) every sample: to tie a peak to the faults of faults.jsonl
        "samples": [(round(t - run["began"], 1), round(rss, 1)) for t, rss in samples],
    }


def summarize(run: dict[str, Any], args: argparse.Namespace, model: Path) -> dict[str, Any]:
    pipeline, inputs = node_values(run["diag"])
    rows, left_out = fault_rows(run["faults"], run["frames"], CENTER_NS, TOLERANCE_NS)
    books = checks(run["faults"], run["frames"], left_out, pipeline, inputs, CAMERA_CHANNELS, ANCHOR)
    seconds = run["seconds"] or 1.0
    absences = sum(len(CAMERA_CHANNELS) - len(f.cameras) for f in run["frames"])
    latency = [s["receive_to_publish"] for s in run["latency"] if "receive_to_publish" in s]
    warmup = args.warmup if args.warmup is not None else max(5.0, args.duration / 10)
    return {
        "model": str(model),
        "bag": str(args.bag) if args.bag else "synthetic 20 s scene (seed 5)",
        "duration_s": args.duration,
        "seconds": round(seconds, 1),
        "seed": args.seed,
        "fault_every_s": args.fault_every,
        "cpus": os.cpu_count(),
        "backend": pipeline.get("backend", "?"),
        "tracker": pipeline.get("tracker.method", "?"),
        "node_alive": run["alive"],
        "frames": len(run["frames"]),
        "rate_hz": len(run["frames"]) / seconds,
        "cpu_cores": run["cpu_s"] / seconds,
        "rss": _rss(run, warmup),
        "latency_thirds": _thirds(latency),
        "faults": [asdict(r) for r in rows],
        "checks": [{**asdict(c), "ok": c.ok} for c in books],
        "absences_unexplained": absences - sum(left_out.values()),
        "all_counted": all(c.ok for c in books if c.gating) and not any(r.uncounted for r in rows),
        "counters": {k: v for k, v in sorted(pipeline.items()) if k.startswith(("counts.", "worker."))},
        "sync": {k: v for k, v in sorted(inputs.items()) if k.startswith("frames_") or k == "resets"},
    }


def _rss_cell(r: dict[str, Any]) -> str:
    if not r:
        return "not measured"
    verdict = "within 5 %" if r["within_limit"] else "OUTSIDE 5 %"
    growth = f"end {100 * r['end_growth']:+.1f} %, max {100 * r['max_growth']:+.1f} %"
    return (
        f"{r['after_warmup_mib']:.0f} (after {r['warmup_s']:.0f} s) -> {r['end_mib']:.0f}, "
        f"max {r['max_mib']:.0f}: {growth} ({verdict})"
    )


def _latency_rows(thirds: list[dict[str, float]]) -> list[str]:
    if len(thirds) < 2:
        return ["| receive->publish ms | too few frames |"]
    first, last = thirds
    rows = [
        f"| receive->publish ms p50 / p95, {name} third | "
        f"{t['p50']:.1f} / {t['p95']:.1f} ({t['frames']} frames) |"
        for name, t in (("first", first), ("last", last))
    ]
    ratios = f"{last['p50'] / first['p50']:.2f} / {last['p95'] / first['p95']:.2f}"
    return [*rows, f"| last / first third, p50 / p95 | {ratios} |"]


def to_markdown(s: dict[str, Any]) -> str:
    lines = [
        f"syncl bench soak: model {s['model']}, bag {s['bag']}, {s['seconds']:.0f} s from the first frame "
        f"(seed {s['seed']}, a fault every {s['fault_every_s']:g} s on average), backend {s['backend']}, "
        f"tracker {s['tracker']}, {s['cpus']} CPUs",
        "",
        "| what | result |",
        "|---|---|",
        f"| node alive at the end | {'yes' if s['node_alive'] else 'NO'} |",
        f"| frames processed | {s['frames']} ({s['rate_hz']:.2f}/s) |",
        f"| node CPU cores | {s['cpu_cores']:.2f} |",
        f"| node RSS MiB | {_rss_cell(s['rss'])} |",
        *_latency_rows(s["latency_thirds"]),
        f"| every fault counted | {'yes' if s['all_counted'] else 'NO (see below)'} |",
        f"| cameras missing from published frames that no fault explains | {s['absences_unexplained']} |",
        "",
        "| fault | injected | left out of a frame (counted) | frame not processed | frame has the camera |",
        "|---|---|---|---|---|",
    ]
    for r in s["faults"]:
        image = r["kind"] in ("corrupt", "truncated", "wrong_size", "silent")
        cells = [r["left_out"], r["not_processed"], r["used"]] if image else ["-", "-", "-"]
        lines.append(f"| {r['kind']} | {r['injected']} | " + " | ".join(map(str, cells)) + " |")
    lines += [
        "",
        "Frame has the camera: for a silent camera, its next image (within max_spread) stood in;"
        " for a bad image, the node did not notice it (not counted).",
        "",
        "| check | soak's count | node's counter | ok |",
        "|---|---|---|---|",
    ]
    for c in s["checks"]:
        relation = " (reason guessed)" if not c["gating"] else "" if c["exact"] else " (at least)"
        verdict = "yes" if c["ok"] else "NO" if c["gating"] else "differs"
        lines.append(f"| {c['what']}{relation} | {c['expected']} | {c['counted']} | {verdict} |")
    lines += [
        "",
        "Reason guessed: a bad image that reached the node after its frame went out is left out as"
        " `missing`, and a frame may hold two faults of one camera; the frame totals per camera are exact.",
    ]
    counters = ", ".join(f"{k} {v}" for k, v in {**s["counters"], **s["sync"]}.items())
    return "\n".join([*lines, "", f"node counters at the end: {counters}"])
