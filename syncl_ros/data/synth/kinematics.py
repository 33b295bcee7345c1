"""Analytic paths (lines and arcs) and speed profiles for the synthetic world.

Everything moving in the world is a point travelling along a :class:`Path`
with an arc length given by a :class:`Profile`. Both are closed-form, so a
pose can be queried at any time and the velocity is the exact time
derivative of the position (speed times the unit tangent), not a finite
difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _arc_offset(
    kappa: NDArray[np.float64] | float,
    sigma: NDArray[np.float64] | float,
    heading0: NDArray[np.float64] | float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Displacement after travelling ``sigma`` on a constant-curvature piece.

    Uses the chord form 2 sin(k s / 2) / k = s sinc(k s / 2 pi), which stays
    exact when the curvature is zero (a straight line).
    """
    chord = sigma * np.sinc(kappa * sigma / (2.0 * np.pi))
    mid = heading0 + 0.5 * kappa * sigma
    return chord * np.cos(mid), chord * np.sin(mid)


@dataclass(frozen=True)
class Path:
    """A planar curve made of constant-curvature pieces, parametrised by arc length.

    Beyond its ends the path continues as straight lines, so every arc
    length maps to a pose; objects may drive off either end without a
    special case.
    """

    x0: NDArray[np.float64]  # (P,) start point of each piece
    y0: NDArray[np.float64]
    heading0: NDArray[np.float64]  # (P,) heading at the start of each piece (rad)
    length: NDArray[np.float64]  # (P,) arc length of each piece (m)
    kappa: NDArray[np.float64]  # (P,) curvature, left turns positive (1/m)

    @staticmethod
    def build(x: float, y: float, heading: float, pieces: Sequence[tuple[float, float]]) -> Path:
        """Chain ``(length, curvature)`` pieces starting at (x, y) with ``heading``."""
        xs, ys, hs = [], [], []
        for length, kappa in pieces:
            xs.append(x)
            ys.append(y)
            hs.append(heading)
            dx, dy = _arc_offset(kappa, length, heading)
            x, y, heading = x + float(dx), y + float(dy), heading + kappa * length
        arr = [np.asarray(v, dtype=np.float64) for v in (xs, ys, hs)]
        lengths = np.array([p[0] for p in pieces], dtype=np.float64)
        kappas = np.array([p[1] for p in pieces], dtype=np.float64)
        return Path(arr[0], arr[1], arr[2], lengths, kappas)

    @staticmethod
    def line(x: float, y: float, heading: float, length: float) -> Path:
        return Path.build(x, y, heading, [(length, 0.0)])

    @property
    def start_s(self) -> NDArray[np.float64]:
        """Arc length at which each piece starts."""
        return np.concatenate([[0.0], np.cumsum(self.length)[:-1]])

    @property
    def total_length(self) -> float:
        return float(self.length.sum())

    def eval(self, s: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Position (x, y) and heading at arc length(s) ``s``."""
        s_arr = np.asarray(s, dtype=np.float64)
        starts = self.start_s
        idx = np.clip(np.searchsorted(starts, s_arr, side="right") - 1, 0, len(starts) - 1)
        sigma = s_arr - starts[idx]
        # On-piece part follows the arc; anything before the first piece or
        # after the last continues straight along the end tangent.
        on_piece = np.clip(sigma, 0.0, self.length[idx])
        straight = sigma - on_piece
        h0, kappa = self.heading0[idx], self.kappa[idx]
        dx, dy = _arc_offset(kappa, on_piece, h0)
        heading = h0 + kappa * on_piece
        x = self.x0[idx] + dx + straight * np.cos(heading)
        y = self.y0[idx] + dy + straight * np.sin(heading)
        return x, y, heading

    def offset(self, d: float) -> Path:
        """The parallel curve ``d`` metres to the left (negative: right).

        An arc's parallel curve is again an arc, with curvature k / (1 - k d)
        and length scaled by (1 - k d); this must stay positive (the offset
        may not pass the turning center).
        """
        scale = 1.0 - self.kappa * d
        if np.any(scale <= 0.05):
            raise ValueError(f"offset {d} m crosses the center of a turn")
        nx, ny = -np.sin(self.heading0), np.cos(self.heading0)
        return Path(
            self.x0 + d * nx, self.y0 + d * ny, self.heading0.copy(), self.length * scale, self.kappa / scale
        )

    def reversed(self) -> Path:
        """The same curve traversed the other way (arc length from the far end)."""
        ends_x, ends_y, ends_h = self.eval(self.start_s + self.length)
        return Path(
            ends_x[::-1].copy(),
            ends_y[::-1].copy(),
            ends_h[::-1] + np.pi,
            self.length[::-1].copy(),
            -self.kappa[::-1],
        )

    def project(self, x: float, y: float, step: float = 0.5) -> float:
        """Arc length of the path point nearest to (x, y), to within ``step``."""
        s = np.arange(-50.0, self.total_length + 50.0, step)
        px, py, _ = self.eval(s)
        return float(s[np.argmin((px - x) ** 2 + (py - y) ** 2)])


@dataclass(frozen=True)
class Profile:
    """Arc length over time as piecewise constant acceleration.

    ``t`` are knot times (s, relative to the scene start), with position
    ``s`` and speed ``v`` at each knot and acceleration ``a`` on the interval
    that starts there. Before the first knot and after the last the motion
    continues at constant speed, so the profile is defined for all times.
    """

    t: NDArray[np.float64]
    s: NDArray[np.float64]
    v: NDArray[np.float64]
    a: NDArray[np.float64]

    @staticmethod
    def constant(speed: float, s0: float = 0.0) -> Profile:
        return Profile(np.zeros(1), np.array([s0]), np.array([speed]), np.zeros(1))

    def at(self, t: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Arc length and speed at time(s) ``t`` (s)."""
        t_arr = np.asarray(t, dtype=np.float64)
        idx = np.clip(np.searchsorted(self.t, t_arr, side="right") - 1, 0, len(self.t) - 1)
        dt = t_arr - self.t[idx]
        # The last interval's acceleration ends at the final knot: extrapolate
        # at constant speed after it and before the first knot.
        a = np.where((dt < 0) | (idx == len(self.t) - 1), 0.0, self.a[idx])
        return self.s[idx] + self.v[idx] * dt + 0.5 * a * dt * dt, self.v[idx] + a * dt

    @property
    def end_time(self) -> float:
        return float(self.t[-1])


class ProfileBuilder:
    """Compose a :class:`Profile` phase by phase (cruise, ramp to a speed, hold)."""

    def __init__(self, speed: float, s0: float = 0.0, t0: float = 0.0) -> None:
        self._t, self._s, self._v = [t0], [s0], [speed]
        self._a: list[float] = []

    @property
    def time(self) -> float:
        return self._t[-1]

    @property
    def position(self) -> float:
        return self._s[-1]

    @property
    def speed(self) -> float:
        return self._v[-1]

    def _phase(self, duration: float, accel: float) -> ProfileBuilder:
        if duration <= 0.0:
            return self
        v, s = self._v[-1], self._s[-1]
        self._a.append(accel)
        self._t.append(self._t[-1] + duration)
        self._s.append(s + v * duration + 0.5 * accel * duration * duration)
        self._v.append(max(0.0, v + accel * duration))
        return self

    def cruise(self, duration: float) -> ProfileBuilder:
        return self._phase(duration, 0.0)

    def cruise_to(self, position: float) -> ProfileBuilder:
        """Keep the current speed until ``position``; no-op if already there or stopped."""
        if self.speed <= 0.0 or position <= self.position:
            return self
        return self._phase((position - self.position) / self.speed, 0.0)

    def ramp(self, speed: float, accel: float) -> ProfileBuilder:
        """Change speed to ``speed`` with |acceleration| ``accel``."""
        dv = speed - self.speed
        if abs(dv) < 1e-9:
            return self
        return self._phase(abs(dv) / accel, float(np.sign(dv)) * accel)

    def stop_at(self, position: float, decel: float) -> ProfileBuilder:
        """Cruise, then brake at ``decel`` so as to stand still exactly at ``position``."""
        braking = self.speed**2 / (2.0 * decel)
        self.cruise_to(position - braking)
        if self.speed > 0.0:
            # Brake with the deceleration that lands exactly on the target.
            remaining = max(position - self.position, 1e-6)
            exact = self.speed**2 / (2.0 * remaining)
            self._phase(self.speed / exact, -exact)
            self._v[-1] = 0.0
            self._s[-1] = position
        return self

    def hold_until(self, time: float) -> ProfileBuilder:
        """Stay at the current speed (usually 0) until ``time``."""
        return self._phase(time - self.time, 0.0)

    def build(self) -> Profile:
        a = [*self._a, 0.0]
        return Profile(np.array(self._t), np.array(self._s), np.array(self._v), np.array(a))


class PathBatch:
    """Many paths evaluated together, one arc length each (padded piece arrays)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        n, p = len(paths), max((len(path.length) for path in paths), default=1)
        self.start = np.full((n, p), np.inf)  # padding pieces are never selected
        self.x0, self.y0, self.heading0 = np.zeros((n, p)), np.zeros((n, p)), np.zeros((n, p))
        self.length, self.kappa = np.zeros((n, p)), np.zeros((n, p))
        for i, path in enumerate(paths):
            k = len(path.length)
            self.start[i, :k] = path.start_s
            self.x0[i, :k], self.y0[i, :k], self.heading0[i, :k] = path.x0, path.y0, path.heading0
            self.length[i, :k], self.kappa[i, :k] = path.length, path.kappa

    def eval(
        self, s: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Position and heading of path i at arc length s[i]; same rules as :meth:`Path.eval`."""
        rows = np.arange(len(s))
        idx = np.maximum((self.start <= s[:, None]).sum(axis=1) - 1, 0)
        sigma = s - self.start[rows, idx]
        on_piece = np.clip(sigma, 0.0, self.length[rows, idx])
        straight = sigma - on_piece
        h0, kappa = self.heading0[rows, idx], self.kappa[rows, idx]
        dx, dy = _arc_offset(kappa, on_piece, h0)
        heading = h0 + kappa * on_piece
        x = self.x0[rows, idx] + dx + straight * np.cos(heading)
        y = self.y0[rows, idx] + dy + straight * np.sin(heading)
        return x, y, heading


class ProfileBatch:
    """Many profiles evaluated together at one time (padded knot arrays)."""

    def __init__(self, profiles: Sequence[Profile]) -> None:
        n, k = len(profiles), max((len(p.t) for p in profiles), default=1)
        self.t = np.full((n, k), np.inf)
        self.s, self.v, self.a = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k))
        self.last = np.zeros(n, dtype=np.int64)
        for i, prof in enumerate(profiles):
            m = len(prof.t)
            self.t[i, :m], self.s[i, :m], self.v[i, :m], self.a[i, :m] = prof.t, prof.s, prof.v, prof.a
            self.last[i] = m - 1

    def at(self, t: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Arc length and speed of every profile at time ``t`` (s); same rules as :meth:`Profile.at`."""
        rows = np.arange(len(self.last))
        idx = np.maximum((self.t <= t).sum(axis=1) - 1, 0)
        dt = t - self.t[rows, idx]
        a = np.where((dt < 0) | (idx == self.last), 0.0, self.a[rows, idx])
        return self.s[rows, idx] + self.v[rows, idx] * dt + 0.5 * a * dt * dt, self.v[rows, idx] + a * dt
