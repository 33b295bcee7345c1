"""A soak run's books: every fault the player injected against what the node published and counted.

Pure functions over three records of one run: the injector's log (one dict per fault, with the
player's monotonic time, kind, camera and header stamp), the frames the node published (arrival
time on the same monotonic clock, stamp, cameras used) and its final `/diagnostics` values.

A bad or held-back image can only be used by a frame whose anchor stamp is within max_spread of
its own (the node's synchronizer rule); such frames published after its injection are its
candidates. Either one of them left its camera out (the node counted that under
frames.without.<reason>.<camera>), or none did and its own rig cycle's frame (its stamp minus the
rig's mean capture offset, within half a camera period) was not published (the frame was not
processed: lost frames are checked in total by the frame balance), or that frame was published
with the camera: for a held-back image, the camera's next image stood in for it (within
max_spread, as the synchronizer allows); for a bad image, a fault the node did not notice.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syncl_ros.ros.faults import IMAGE_REASONS, KINDS

MS = 1_000_000
# Stamps repeat every pass of a looped bag; an injected jump needs min_jump_offset_s (5 s) of bag,
# i.e. 2.5 s at burst rate: a frame later than this after its fault is of another pass.
MATCH_WINDOW_S = 2.5
MAX_SPREAD_NS = 100 * MS  # the node's max_spread_ms default
PERIOD_NS = 83_333_333  # the rig's 12 Hz


@dataclass(frozen=True)
class PublishedFrame:
    arrival_s: float  # time.monotonic() when the listener got it
    stamp_ns: int
    cameras: tuple[str, ...]


@dataclass(frozen=True)
class FaultRow:
    kind: str
    injected: int
    left_out: int = 0  # its frame was published without the camera (counted by the node)
    not_processed: int = 0  # no published frame holds its rig cycle
    # Its own frame was published with the camera. A held-back (silent) image: the camera's next
    # image, within max_spread, stood in for it. A bad image: the node did not notice it.
    used: int = 0

    @property
    def uncounted(self) -> int:
        return 0 if self.kind == "silent" else self.used


@dataclass(frozen=True)
class Check:
    what: str
    expected: int  # from the soak's own records
    counted: int  # the node's counter
    exact: bool = True  # False: the node may count more (natural occurrences too)
    # False: the books' guess at a count's reason, shown but not a condition of "every fault
    # counted" (the totals it splits are checked exactly elsewhere).
    gating: bool = True

    @property
    def ok(self) -> bool:
        return self.counted == self.expected if self.exact else self.counted >= self.expected


def _outcome(
    fault: Mapping[str, Any],
    frames: Sequence[PublishedFrame],
    arrivals: Sequence[float],
    claimed: set[tuple[int, str]],
    center_ns: int,
    tol_ns: int,
) -> str:
    """left_out, used or not_processed: what became of one bad or held-back image. A camera's
    absence from a frame explains one image only (``claimed``); its own cycle's frame first."""
    lo = bisect.bisect_left(arrivals, fault["t"])
    hi = bisect.bisect_right(arrivals, fault["t"] + MATCH_WINDOW_S)
    camera, stamp = fault["camera"], fault["stamp_ns"]
    near = [i for i in range(lo, hi) if abs(frames[i].stamp_ns - stamp) <= MAX_SPREAD_NS]
    own = [i for i in near if abs(frames[i].stamp_ns - (stamp - center_ns)) <= tol_ns]
    for i in own + near:
        if camera not in frames[i].cameras and (i, camera) not in claimed:
            claimed.add((i, camera))
            return "left_out"
    return (
        "used"
        if own and _cycles_published(frames[own[0]].stamp_ns, stamp, [frames[i] for i in near])
        else "not_processed"
    )


def _cycles_published(own_ns: int, stamp_ns: int, near: Sequence[PublishedFrame]) -> bool:
    """Whether every rig cycle whose frame could have taken the image (anchor within max_spread of
    it) was published: else the image may sit in one that was not processed."""
    cycles = [own_ns + k * PERIOD_NS for k in (-2, -1, 0, 1, 2)]
    within = [c for c in cycles if abs(c - stamp_ns) <= MAX_SPREAD_NS]
    return all(any(abs(f.stamp_ns - c) <= 10 * MS for f in near) for c in within)


def fault_rows(
    faults: Sequence[Mapping[str, Any]],
    frames: Sequence[PublishedFrame],
    center_ns: int,
    tol_ns: int,
) -> tuple[list[FaultRow], dict[tuple[str, str], int]]:
    """One row per fault kind, and per (reason, camera) the images left out of published frames."""
    arrivals = [f.arrival_s for f in frames]
    tally: dict[str, dict[str, int]] = {k: {"injected": 0} for k in KINDS}
    left_out: dict[tuple[str, str], int] = {}
    claimed: set[tuple[int, str]] = set()
    for fault in faults:
        kind = fault["kind"]
        if kind not in tally:
            continue  # "start", "silence" (a silence's held-back images are its "silent" lines)
        row = tally[kind]
        row["injected"] += 1
        if kind not in IMAGE_REASONS:
            continue
        outcome = _outcome(fault, frames, arrivals, claimed, center_ns, tol_ns)
        row[outcome] = row.get(outcome, 0) + 1
        if outcome == "left_out":
            key = (IMAGE_REASONS[kind], fault["camera"])
            left_out[key] = left_out.get(key, 0) + 1
    rows = [FaultRow(k, **t) for k, t in tally.items()]
    return rows, left_out


def node_values(diag: Mapping[str, Mapping[str, str]]) -> tuple[Mapping[str, str], Mapping[str, str]]:
    """The node's pipeline and input statuses from one /diagnostics array (by status name)."""
    pipeline = next((v for k, v in diag.items() if k.endswith("pipeline")), {})
    inputs = next((v for k, v in diag.items() if k.endswith("input")), {})
    return pipeline, inputs


def _count(values: Mapping[str, str], key: str) -> int:
    return int(float(values.get(key, "0")))


def _sum(values: Mapping[str, str], prefix: str, suffix: str = "") -> int:
    return sum(_count(values, k) for k in values if k.startswith(prefix) and k.endswith(suffix))


def checks(
    faults: Sequence[Mapping[str, Any]],
    frames: Sequence[PublishedFrame],
    left_out: Mapping[tuple[str, str], int],
    pipeline: Mapping[str, str],
    inputs: Mapping[str, str],
    channels: Sequence[str],
    anchor: str,
) -> list[Check]:
    """What the node counted against what the soak saw, injected, or can derive."""
    kinds = [f["kind"] for f in faults]
    out = [
        Check(
            "frames published = counts.frames.processed",
            len(frames),
            _count(pipeline, "counts.frames.processed"),
        )
    ]
    for reason in sorted(set(IMAGE_REASONS.values())):
        for cam in channels:
            expected = left_out.get((reason, cam), 0)
            counted = _count(pipeline, f"counts.frames.without.{reason}.{cam}")
            if expected or counted:  # natural misses (a late image) are counted too
                what = f"injected {reason} images left out, {cam}"
                if reason == "missing":
                    out.append(Check(what, expected, counted, exact=False))
                else:
                    # A bad image that reaches the node after its frame went out is left out as
                    # `missing` (truly: it was not there), and a frame can hold two faults of one
                    # camera: the reason is the books' guess; the frame totals below are exact.
                    out.append(Check(what, expected, counted, gating=False))
    for cam in channels:
        without = sum(cam not in f.cameras for f in frames)
        counted = _sum(pipeline, "counts.frames.without.", f".{cam}")
        if without or counted:
            out.append(Check(f"frames published without {cam} = frames.without.*.{cam}", without, counted))
    out.append(
        Check(
            "NaN transforms injected = counts.tf.invalid",
            kinds.count("nan_tf"),
            _count(pipeline, "counts.tf.invalid"),
        )
    )
    out.append(
        Check(
            "time jumps (injected + loop) = counts.resets.time_jump",
            kinds.count("time_jump"),
            _count(pipeline, "counts.resets.time_jump"),
        )
    )
    out.append(_frame_balance(pipeline, inputs))
    out.append(_anchor_balance(inputs, anchor))
    return out


def _frame_balance(pipeline: Mapping[str, str], inputs: Mapping[str, str]) -> Check:
    """Every synchronized frame is processed, skipped by the period, replaced while the worker was
    busy, or dropped for a counted reason."""
    fates = (
        _count(pipeline, "counts.frames.processed")
        + _count(pipeline, "counts.frames.skipped_by_period")
        + _count(pipeline, "worker.replaced_while_busy")
        + _sum(pipeline, "counts.frames.dropped.")
    )
    return Check(
        "frames synchronized = processed + skipped + replaced + dropped.*",
        _count(inputs, "frames_emitted"),
        fates,
    )


def _anchor_balance(inputs: Mapping[str, str], anchor: str) -> Check:
    """Every anchor image received opens a frame (emitted or dropped), or is a duplicate, out of
    order, or still pending; a frame handed over had none."""
    cam = f"cameras.{anchor}."
    fates = (
        _count(inputs, "frames_emitted")
        - _count(inputs, "frames_handed_over")
        + _count(inputs, "frames_dropped")
        + _count(inputs, cam + "duplicates")
        + _count(inputs, cam + "dropped.out_of_order")
        + _count(inputs, "pending")
    )
    return Check(
        f"{anchor} images received = frames opened + duplicates + out of order + pending",
        _count(inputs, cam + "received"),
        fates,
    )
