"""Rig synchronizer: complete frames, counted drops, late images, time jumps, bounded memory."""

from __future__ import annotations

import pytest

from syncl_ros.pipeline.sync import MS, DropReason, RigFrame, RigSynchronizer
from syncl_ros.rig import CAMERA_CHANNELS

PERIOD = 83 * MS  # ~12 Hz, the nuScenes camera rate
T0 = 1_700_000_000 * 1_000_000_000
# Capture offset of each camera after the front camera within one sweep (within ±30 ms).
OFFSETS = {
    "CAM_FRONT": 0,
    "CAM_FRONT_RIGHT": 12 * MS,
    "CAM_FRONT_LEFT": -12 * MS,
    "CAM_BACK": 30 * MS,
    "CAM_BACK_LEFT": -28 * MS,
    "CAM_BACK_RIGHT": 25 * MS,
}


def sweep_messages(sweeps: int, start: int = T0, skip: tuple[str, ...] = ()) -> list[tuple[str, int, str]]:
    """(channel, stamp, payload) for every image, in stamp (= arrival) order."""
    msgs = [
        (c, start + k * PERIOD + OFFSETS[c], f"{c}#{k}")
        for k in range(sweeps)
        for c in CAMERA_CHANNELS
        if c not in skip
    ]
    return sorted(msgs, key=lambda m: m[1])


def feed(sync: RigSynchronizer, msgs: list[tuple[str, int, str]]) -> tuple[list[RigFrame], int]:
    frames: list[RigFrame] = []
    resets = 0
    for channel, stamp, payload in msgs:
        out = sync.add(channel, stamp, payload)
        frames += out.frames
        resets += out.reset
    return frames, resets


def test_complete_frames_within_spread() -> None:
    sync = RigSynchronizer()
    frames, resets = feed(sync, sweep_messages(20))
    assert resets == 0 and len(frames) == 20
    for k, frame in enumerate(frames):
        assert frame.stamp_ns == T0 + k * PERIOD
        assert list(frame.payloads) == list(CAMERA_CHANNELS)
        assert all(p == f"{c}#{k}" for c, p in frame.payloads.items()), frame.payloads
        assert frame.stamps_ns["CAM_BACK"] == frame.stamp_ns + 30 * MS
        assert frame.spread_ns == 58 * MS
    stats = sync.stats()
    assert stats["frames_emitted"] == 20 and stats["frames_dropped"] == 0
    assert stats["last_spread_ms"] == pytest.approx(58.0)
    cams = stats["cameras"]
    assert all(cams[c]["received"] == 20 and cams[c]["used"] == 20 for c in CAMERA_CHANNELS)
    assert sum(sum(c["dropped"].values()) for c in cams.values()) == 0
    assert stats["frames_without_anchor"] == 0


def test_nearest_image_is_chosen_when_a_camera_fires_far_from_the_anchor() -> None:
    # CAM_BACK 50 ms before the front camera: its next image (33 ms after) is nearer.
    sync = RigSynchronizer()
    msgs = [(c, s - 80 * MS if c == "CAM_BACK" else s, p) for c, s, p in sweep_messages(6)]
    frames, _ = feed(sync, sorted(msgs, key=lambda m: m[1]))
    for frame in frames:
        assert abs(frame.stamps_ns["CAM_BACK"] - frame.stamp_ns) == 33 * MS


def test_missing_camera_drops_are_counted_per_camera() -> None:
    sync = RigSynchronizer()
    frames, _ = feed(sync, sweep_messages(10, skip=("CAM_BACK",)))
    frames += sync.poll(T0 + 20 * PERIOD).frames
    assert frames == []
    stats = sync.stats()
    assert stats["frames_dropped"] == 10 and stats["pending"] == 0
    assert stats["cameras"]["CAM_BACK"]["dropped"][DropReason.MISSING.value] == 10
    others = [c for c in CAMERA_CHANNELS if c != "CAM_BACK"]
    assert all(sum(stats["cameras"][c]["dropped"].values()) == 0 for c in others)


def test_late_camera_within_the_wait_completes_the_frame() -> None:
    sync = RigSynchronizer(max_wait_ns=150 * MS)
    first, _ = feed(sync, sweep_messages(2))  # the cameras' rates become known
    assert len(first) == 2
    anchor = T0 + 2 * PERIOD
    now = anchor + 40 * MS  # the node's clock when the images arrive
    for channel in CAMERA_CHANNELS:
        if channel != "CAM_BACK":
            assert sync.add(channel, anchor + OFFSETS[channel], channel, now_ns=now).frames == []
    assert sync.poll(now + 60 * MS).frames == []  # still waiting
    out = sync.add("CAM_BACK", anchor + 5 * MS, "late", now_ns=now + 120 * MS)
    assert len(out.frames) == 1 and out.frames[0].payloads["CAM_BACK"] == "late"


def test_camera_beyond_the_wait_drops_the_frame_on_poll() -> None:
    sync = RigSynchronizer(max_wait_ns=150 * MS)
    for channel in CAMERA_CHANNELS:
        if channel != "CAM_BACK":
            sync.add(channel, T0 + OFFSETS[channel], channel, now_ns=T0)
    assert sync.poll(T0 + 149 * MS).frames == []
    assert sync.poll(T0 + 150 * MS).frames == []
    assert sync.stats()["frames_dropped"] == 1
    # The late image is now older than a frame that was already decided.
    sync.add("CAM_BACK", T0 - 150 * MS, "too late", now_ns=T0 + 200 * MS)
    dropped = sync.stats()["cameras"]["CAM_BACK"]["dropped"]
    assert dropped[DropReason.MISSING.value] == 1 and dropped[DropReason.OUT_OF_ORDER.value] == 1


def test_stale_spread_and_out_of_order_reasons() -> None:
    sync = RigSynchronizer()
    for channel in CAMERA_CHANNELS[1:]:
        stamp = T0 - 300 * MS if channel == "CAM_BACK" else T0 + OFFSETS[channel]
        if channel == "CAM_FRONT_LEFT":
            stamp = T0 + 150 * MS  # only an image far after the anchor: can never fit
        sync.add(channel, stamp, channel, now_ns=T0)
    sync.add("CAM_FRONT", T0, "anchor", now_ns=T0)
    # CAM_FRONT_LEFT already doomed the frame: dropped without waiting.
    cams = sync.stats()["cameras"]
    assert sync.stats()["frames_dropped"] == 1
    assert cams["CAM_FRONT_LEFT"]["dropped"][DropReason.SPREAD.value] == 1

    sync.add("CAM_FRONT", T0 + PERIOD, "anchor2", now_ns=T0 + PERIOD)
    sync.poll(T0 + PERIOD + 200 * MS)
    cams = sync.stats()["cameras"]
    assert cams["CAM_BACK"]["dropped"][DropReason.STALE.value] == 1
    sync.add("CAM_FRONT", T0 + 10 * MS, "older than the last frame", now_ns=T0 + 400 * MS)
    assert sync.stats()["cameras"]["CAM_FRONT"]["dropped"][DropReason.OUT_OF_ORDER.value] == 1


def test_results_list_the_drops_they_counted() -> None:
    sync = RigSynchronizer()
    drops = []
    for channel, stamp, payload in sweep_messages(3, skip=("CAM_BACK",)):
        drops += sync.add(channel, stamp, payload).drops
    drops += sync.poll(T0 + 10 * PERIOD).drops
    drops += sync.add("CAM_FRONT", T0 + 1, "older than the last frame").drops
    assert drops == [("CAM_BACK", DropReason.MISSING)] * 3 + [("CAM_FRONT", DropReason.OUT_OF_ORDER)]
    assert sync.poll(T0 + 20 * PERIOD).drops == []


def test_a_silent_anchor_counts_its_lost_frames() -> None:
    # The front camera is silent for sweeps 5..14 of 30: ten frames lost for want of an anchor.
    msgs = [m for m in sweep_messages(30) if not (m[0] == "CAM_FRONT" and 5 <= (m[1] - T0) // PERIOD < 15)]
    sync = RigSynchronizer()
    frames, drops = [], []
    for channel, stamp, payload in msgs:
        out = sync.add(channel, stamp, payload)
        frames += out.frames
        drops += out.drops
    stats = sync.stats()
    assert stats["frames_without_anchor"] == 10 and len(frames) == 20
    assert stats["cameras"]["CAM_FRONT"]["dropped"][DropReason.MISSING.value] == 10
    assert drops == [("CAM_FRONT", DropReason.MISSING)] * 10


def test_a_pause_or_a_seek_is_no_anchor_outage() -> None:
    # Every camera pauses for 3 s, then the stream jumps 100 s ahead; other cameras come first.
    paused = sweep_messages(10) + sweep_messages(10, start=T0 + 10 * PERIOD + 3_000 * MS)
    seek = sweep_messages(10, start=T0 + 100_000 * MS)
    ahead = sorted(seek, key=lambda m: (m[0] == "CAM_FRONT", m[1]))[:20]  # 4 sweeps without anchor
    sync = RigSynchronizer()
    feed(sync, paused + ahead)
    assert sync.stats()["frames_without_anchor"] == 0


def test_duplicated_stamps_are_ignored_and_counted() -> None:
    sync = RigSynchronizer()
    msgs = sweep_messages(5)
    doubled = [m for msg in msgs for m in (msg, msg)]
    frames, _ = feed(sync, doubled)
    assert len(frames) == 5
    assert all(sync.stats()["cameras"][c]["duplicates"] == 5 for c in CAMERA_CHANNELS)


def test_backward_jump_resets_once_and_sync_resumes() -> None:
    sync = RigSynchronizer()
    first, resets = feed(sync, sweep_messages(20))
    assert len(first) == 20 and resets == 0
    # A message of the old timeline, still in flight when the loop restarts.
    looped = sweep_messages(10)
    frames, resets = feed(sync, [*looped[:3], ("CAM_BACK", T0 + 20 * PERIOD + 30 * MS, "old"), *looped[3:]])
    assert resets == 1 and sync.stats()["resets"] == 1
    assert len(frames) == 10 and frames[0].stamp_ns == T0
    assert sync.stats()["cameras"]["CAM_BACK"]["dropped"][DropReason.OUT_OF_ORDER.value] == 1


def test_memory_stays_bounded_with_a_dead_camera() -> None:
    sync = RigSynchronizer(buffer_size=5, max_pending=3)
    msgs = sweep_messages(2000, skip=("CAM_BACK_LEFT",))  # 10k messages
    assert len(msgs) == 10_000
    peak = 0
    for channel, stamp, payload in msgs:
        assert sync.add(channel, stamp, payload).frames == []
        peak = max(peak, sync.buffered())
    assert peak <= 4 * 5 + 3
    stats = sync.stats()
    assert stats["frames_dropped"] >= 1997 and stats["frames_emitted"] == 0
    assert stats["cameras"]["CAM_BACK_LEFT"]["dropped"][DropReason.MISSING.value] == stats["frames_dropped"]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="anchor"):
        RigSynchronizer(anchor="CAM_TOP")
    with pytest.raises(KeyError, match="unknown channel"):
        RigSynchronizer().add("CAM_TOP", 0, None)


# ---------------------------------------------------------------- recovery after time jumps

S = 1_000 * MS
LOOP = "loop"  # the stream jumps back to its start (a bag loop)
FORWARD = "forward"  # the stream jumps 100 s ahead (a seek)


def jumping_stream(
    segments: int, sweeps: int, kind: str, silent: dict[str, list[tuple[int, int]]]
) -> list[tuple[str, int, str, int]]:
    """(channel, stamp, payload, arrival) of ``segments`` runs of ``sweeps`` sweeps that follow each
    other on the arrival clock; each run starts over (LOOP) or 100 s later (FORWARD). A camera is
    silent while the arrival time (since the first sweep) is in one of its ``silent`` windows."""
    msgs = []
    for seg in range(segments):
        start = T0 + (seg * 100 * S if kind == FORWARD else 0)
        for k in range(sweeps):
            for c in CAMERA_CHANNELS:
                wall = (seg * sweeps + k) * PERIOD + OFFSETS[c]
                if not any(a <= wall < b for a, b in silent.get(c, [])):
                    msgs.append((c, start + k * PERIOD + OFFSETS[c], f"{c}#{seg}/{k}", T0 + wall))
    return sorted(msgs, key=lambda m: m[3])


def emitted_sweeps(sync: RigSynchronizer, msgs: list[tuple[str, int, str, int]]) -> dict[int, set[int]]:
    """Feed the stream, polling as the node's timer does; the sweeps emitted per segment."""
    out: dict[int, set[int]] = {}
    for channel, stamp, payload, wall in msgs:
        frames = sync.poll(wall).frames + sync.add(channel, stamp, payload, now_ns=wall).frames
        for frame in frames:
            seg, k = frame.payloads["CAM_FRONT"].split("#")[1].split("/")
            out.setdefault(int(seg), set()).add(int(k))
    return out


SWEEPS = 24  # ~2 s per segment


@pytest.mark.parametrize("kind", [LOOP, FORWARD])
@pytest.mark.parametrize("camera", ["CAM_FRONT_LEFT", "CAM_FRONT"])
def test_a_camera_late_after_each_jump_delays_frames_only_until_it_delivers(kind: str, camera: str) -> None:
    # The camera starts 0.6 s after the others in every segment: longer than the jump threshold.
    late = [(s * SWEEPS * PERIOD - 50 * MS, s * SWEEPS * PERIOD + 600 * MS) for s in range(4)]
    sync = RigSynchronizer()
    got = emitted_sweeps(sync, jumping_stream(4, SWEEPS, kind, {camera: late}))
    back = 600 * MS // PERIOD + 2  # the camera's images are there from here on (with a margin)
    for seg in range(4):  # the last sweep of a segment may still wait for its images at the jump
        assert got.get(seg, set()) >= set(range(back, SWEEPS - 1)), (seg, got.get(seg))
    assert sync.resets == (3 if kind == LOOP else 0)


@pytest.mark.parametrize("kind", [LOOP, FORWARD])
@pytest.mark.parametrize("camera", ["CAM_FRONT_LEFT", "CAM_FRONT"])
def test_a_camera_silent_across_a_jump_delays_frames_only_until_it_delivers(kind: str, camera: str) -> None:
    # 10 s of stream, then the jump; the camera is silent from 9 s to 12 s (2 s after the jump).
    sweeps = 10 * S // PERIOD
    sync = RigSynchronizer()
    got = emitted_sweeps(sync, jumping_stream(2, sweeps, kind, {camera: [(9 * S, 12 * S)]}))
    assert got[0] >= set(range(1, 9 * S // PERIOD))
    back = (12 * S - sweeps * PERIOD) // PERIOD + 2  # the first sweep after the silence, and margin
    assert got.get(1, set()) >= set(range(back, sweeps - 1)), got.get(1)
    assert sync.resets == (1 if kind == LOOP else 0)


def test_old_images_in_flight_are_discarded_while_a_camera_is_late() -> None:
    late = {"CAM_FRONT_LEFT": [(SWEEPS * PERIOD - 50 * MS, SWEEPS * PERIOD + 600 * MS)]}
    msgs = jumping_stream(2, SWEEPS, LOOP, late)
    at = next(i for i, m in enumerate(msgs) if m[3] >= T0 + SWEEPS * PERIOD - 50 * MS) + 1
    old = ("CAM_BACK", T0 + SWEEPS * PERIOD + OFFSETS["CAM_BACK"], "CAM_BACK#0/24", msgs[at][3])
    msgs.insert(at, old)  # the old timeline's next image, delivered after the loop began
    sync = RigSynchronizer()
    got = emitted_sweeps(sync, msgs)
    assert got[1] >= set(range(600 * MS // PERIOD + 2, SWEEPS - 1)), got
    assert sync.resets == 1
    assert sync.stats()["cameras"]["CAM_BACK"]["dropped"][DropReason.OUT_OF_ORDER.value] == 1


def test_repeated_loops_recover_every_time() -> None:
    late = [(s * 12 * PERIOD - 50 * MS, s * 12 * PERIOD + 600 * MS) for s in range(10)]
    sync = RigSynchronizer()
    got = emitted_sweeps(sync, jumping_stream(10, 12, LOOP, {"CAM_BACK": late}))
    assert all(got.get(seg, set()) >= set(range(7, 11)) for seg in range(10)), got
    assert sync.resets == 9


def test_a_single_stray_old_image_does_not_stall_the_stream() -> None:
    # An image 5 s in the past starts a new timeline (a reset); the live stream takes over again.
    msgs = jumping_stream(1, 40, LOOP, {})
    at = next(i for i, m in enumerate(msgs) if m[3] >= T0 + 20 * PERIOD)
    msgs.insert(at, ("CAM_BACK", T0 + 20 * PERIOD - 5 * S, "CAM_BACK#stray", msgs[at][3]))
    sync = RigSynchronizer()
    got = emitted_sweeps(sync, msgs)
    assert got[0] >= set(range(30, 39)), got
    assert sync.resets == 1


def test_degraded_a_silent_camera_leaves_frames_without_it() -> None:
    sync = RigSynchronizer(min_cameras=3)
    frames, _ = feed(sync, sweep_messages(10, skip=("CAM_BACK",)))
    # The last sweep still waits for CAM_BACK; a poll past the wait lets it go.
    frames += sync.poll(T0 + 10 * PERIOD + 200 * MS).frames
    stats = sync.stats()
    assert len(frames) == 10 and stats["frames_dropped"] == 0 and stats["frames_degraded"] == 10
    assert all(
        f.missing == {"CAM_BACK": DropReason.MISSING} and f.payloads["CAM_BACK"] is None for f in frames
    )
    assert all("CAM_BACK" not in f.stamps_ns and f.anchor == "CAM_FRONT" for f in frames)
    assert stats["cameras"]["CAM_BACK"]["dropped"][DropReason.MISSING.value] == 10
    assert stats["cameras"]["CAM_FRONT_LEFT"]["used"] == 10


def test_degraded_frames_need_min_cameras() -> None:
    silent = ("CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT", "CAM_FRONT_LEFT")
    sync = RigSynchronizer(min_cameras=3)
    frames, _ = feed(sync, sweep_messages(10, skip=silent))
    frames += sync.poll(T0 + 10 * PERIOD + 200 * MS).frames
    assert frames == [] and sync.stats()["frames_dropped"] == 10  # two cameras left: below three


def test_degraded_a_silent_anchor_hands_its_frames_over() -> None:
    # The front camera is silent for sweeps 5..14 of 30: the others carry those frames.
    msgs = [m for m in sweep_messages(30) if not (m[0] == "CAM_FRONT" and 5 <= (m[1] - T0) // PERIOD < 15)]
    sync = RigSynchronizer(min_cameras=3)
    frames, _ = feed(sync, msgs)
    stats = sync.stats()
    handed = [f for f in frames if f.anchor != "CAM_FRONT"]
    assert stats["frames_without_anchor"] == 10 and stats["frames_handed_over"] == 10 and len(handed) == 10
    assert len(frames) == 30  # every sweep: twenty by the anchor, ten handed over
    stamps = [f.stamp_ns for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    for f in handed:
        k = round((f.stamp_ns - T0) / PERIOD)
        assert 5 <= k < 15 and f.missing == {"CAM_FRONT": DropReason.MISSING}
        # Every camera of the handed-over frame comes from the same sweep as its stamp.
        assert all(abs(s - (T0 + k * PERIOD + OFFSETS[c])) < 1 * MS for c, s in f.stamps_ns.items())
        assert f.anchor == "CAM_FRONT_RIGHT" and f.payloads["CAM_FRONT"] is None


def test_without_degraded_operation_a_silent_anchor_hands_nothing_over() -> None:
    msgs = [m for m in sweep_messages(30) if not (m[0] == "CAM_FRONT" and 5 <= (m[1] - T0) // PERIOD < 15)]
    sync = RigSynchronizer()
    frames, _ = feed(sync, msgs)
    assert sync.stats()["frames_handed_over"] == 0 and all(f.anchor == "CAM_FRONT" for f in frames)


def test_frames_waiting_when_time_jumps_back_are_counted_as_dropped() -> None:
    sync = RigSynchronizer()
    feed(sync, sweep_messages(10, skip=("CAM_BACK",)))  # frames wait for CAM_BACK (up to 3 pending)
    pending = sync.stats()["pending"]
    dropped = sync.stats()["frames_dropped"]
    assert pending > 0
    _, resets = feed(sync, sweep_messages(1))  # the bag loops
    stats = sync.stats()
    assert resets == 1 and stats["frames_lost_at_reset"] == pending
    assert stats["frames_dropped"] == dropped + pending
