"""How each class looks: per-object colour palettes and painted panels on the box faces.

A box face is addressed by (a, h) in [0, 1]^2: ``h`` runs up the face from
the ground, ``a`` along it (from the rear to the front on the side faces,
from the right to the left on the front and back faces; on the top face
``a`` runs rear to front and ``h`` left to right). Panels are rectangles in
(a, h) painted with one palette slot, later panels on top of earlier ones;
the silhouette stays the annotated box, so pixels and labels agree exactly.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

from syncl_ros.data.synth.actors import BICYCLE, BUS, CAR, MOTORCYCLE, PEDESTRIAN, TRAILER, TRUCK

FRONT, BACK, LEFT, RIGHT, TOP = range(5)
SIDES = (LEFT, RIGHT)
ENDS = (FRONT, BACK)
ALL = (FRONT, BACK, LEFT, RIGHT, TOP)

# Palette slots.
BODY, SECOND, GLASS, TYRE, LIGHT, TAIL, SKIN, HAIR, DARK = range(9)
_N_SLOTS = 9

# A parked bicycle (no rider) is drawn without a rider; it is recognised by its height.
RIDERLESS_BICYCLE_HEIGHT = 1.12

_CAR_BODIES = [
    (235, 235, 232),
    (200, 202, 205),
    (140, 142, 146),
    (35, 36, 40),
    (20, 40, 90),
    (150, 20, 25),
    (90, 110, 130),
    (60, 80, 60),
    (230, 200, 60),
    (120, 60, 30),
]
_TRUCK_CABS = [(240, 240, 240), (30, 70, 160), (200, 30, 30), (250, 170, 20), (40, 110, 60)]
_CARGO = [(225, 225, 222), (190, 190, 186), (120, 120, 125), (210, 190, 150)]
_BUS = [(200, 30, 35), (30, 90, 170), (240, 200, 40), (235, 235, 235), (40, 140, 80)]
_STRIPE = [(250, 250, 250), (20, 20, 25), (250, 180, 30)]
_SKIN = [(240, 200, 170), (210, 160, 120), (160, 110, 75), (100, 70, 50)]
_HAIR = [(30, 25, 20), (80, 55, 30), (160, 130, 80), (120, 120, 120)]
_CLOTHES = [
    (30, 60, 140),
    (180, 30, 40),
    (40, 40, 45),
    (230, 230, 225),
    (60, 120, 60),
    (240, 140, 30),
    (120, 80, 150),
    (90, 90, 95),
    (200, 180, 140),
]
_PANTS = [(30, 40, 70), (40, 40, 45), (120, 100, 70), (70, 70, 75), (20, 20, 25)]
_HELMET = [(250, 250, 250), (20, 20, 20), (220, 30, 30), (40, 90, 200), (250, 200, 20)]

Panel = tuple[tuple[int, ...], float, float, float, float, int]


def _wheels(centers: tuple[float, ...], half: float, top: float) -> list[Panel]:
    return [(SIDES, c - half, c + half, 0.0, top, TYRE) for c in centers]


_PANELS: dict[int, list[Panel]] = {
    CAR: [
        (SIDES, 0.0, 1.0, 0.0, 0.1, DARK),
        (SIDES, 0.2, 0.78, 0.6, 0.9, GLASS),
        (SIDES, 0.47, 0.5, 0.6, 0.9, BODY),
        *_wheels((0.2, 0.8), 0.075, 0.33),
        ((FRONT,), 0.08, 0.92, 0.58, 0.9, GLASS),
        ((FRONT,), 0.3, 0.7, 0.28, 0.44, DARK),
        ((FRONT,), 0.06, 0.24, 0.4, 0.52, LIGHT),
        ((FRONT,), 0.76, 0.94, 0.4, 0.52, LIGHT),
        ((BACK,), 0.1, 0.9, 0.62, 0.88, GLASS),
        ((BACK,), 0.04, 0.2, 0.45, 0.58, TAIL),
        ((BACK,), 0.8, 0.96, 0.45, 0.58, TAIL),
        (ENDS, 0.0, 1.0, 0.0, 0.15, DARK),
        ((TOP,), 0.78, 1.0, 0.0, 1.0, GLASS),
    ],
    TRUCK: [
        ((*SIDES, TOP), 0.0, 0.7, 0.0, 1.0, SECOND),
        ((BACK,), 0.0, 1.0, 0.0, 1.0, SECOND),
        (SIDES, 0.7, 0.72, 0.0, 1.0, DARK),
        (SIDES, 0.76, 0.96, 0.55, 0.82, GLASS),
        (SIDES, 0.0, 1.0, 0.0, 0.12, DARK),
        *_wheels((0.11, 0.25, 0.86), 0.055, 0.22),
        ((FRONT,), 0.06, 0.94, 0.52, 0.84, GLASS),
        ((FRONT,), 0.05, 0.2, 0.2, 0.3, LIGHT),
        ((FRONT,), 0.8, 0.95, 0.2, 0.3, LIGHT),
        ((BACK,), 0.495, 0.505, 0.12, 1.0, DARK),
        ((BACK,), 0.03, 0.12, 0.14, 0.22, TAIL),
        ((BACK,), 0.88, 0.97, 0.14, 0.22, TAIL),
        (ENDS, 0.0, 1.0, 0.0, 0.12, DARK),
    ],
    BUS: [
        (SIDES, 0.04, 0.96, 0.5, 0.86, GLASS),
        (SIDES, 0.0, 1.0, 0.38, 0.45, SECOND),
        (SIDES, 0.0, 1.0, 0.0, 0.08, DARK),
        *_wheels((0.15, 0.77), 0.05, 0.25),
        ((FRONT,), 0.05, 0.95, 0.35, 0.88, GLASS),
        ((FRONT,), 0.2, 0.8, 0.9, 0.97, LIGHT),
        ((FRONT,), 0.05, 0.18, 0.12, 0.2, LIGHT),
        ((FRONT,), 0.82, 0.95, 0.12, 0.2, LIGHT),
        ((BACK,), 0.2, 0.8, 0.65, 0.88, GLASS),
        ((BACK,), 0.04, 0.14, 0.15, 0.3, TAIL),
        ((BACK,), 0.86, 0.96, 0.15, 0.3, TAIL),
        ((TOP,), 0.0, 1.0, 0.0, 1.0, SECOND),
    ],
    TRAILER: [
        (SIDES, 0.3, 0.7, 0.5, 0.72, SECOND),
        (ALL[:4], 0.0, 1.0, 0.0, 0.3, DARK),
        *_wheels((0.08, 0.2, 0.32), 0.05, 0.22),
        ((BACK,), 0.495, 0.505, 0.3, 1.0, DARK),
        ((BACK,), 0.03, 0.12, 0.3, 0.36, TAIL),
        ((BACK,), 0.88, 0.97, 0.3, 0.36, TAIL),
    ],
    PEDESTRIAN: [
        (ALL[:4], 0.0, 1.0, 0.04, 0.5, SECOND),
        (ALL[:4], 0.0, 1.0, 0.0, 0.04, DARK),
        (ALL[:4], 0.0, 1.0, 0.86, 1.0, SKIN),
        ((BACK,), 0.0, 1.0, 0.86, 1.0, HAIR),
        (ENDS + SIDES, 0.0, 1.0, 0.95, 1.0, HAIR),
        ((TOP,), 0.0, 1.0, 0.0, 1.0, HAIR),
    ],
    MOTORCYCLE: [
        (ALL[:4], 0.0, 1.0, 0.0, 0.32, TYRE),
        (SIDES, 0.25, 0.75, 0.0, 0.32, DARK),
        (ALL[:4], 0.0, 1.0, 0.55, 0.86, SECOND),
        (ALL[:4], 0.0, 1.0, 0.86, 1.0, HAIR),
        ((FRONT,), 0.35, 0.65, 0.38, 0.47, LIGHT),
        ((BACK,), 0.38, 0.62, 0.38, 0.45, TAIL),
        ((TOP,), 0.0, 1.0, 0.0, 1.0, HAIR),
    ],
    BICYCLE: [
        (ALL[:4], 0.0, 1.0, 0.0, 0.42, TYRE),
        (SIDES, 0.3, 0.7, 0.25, 0.42, BODY),
        (ALL[:4], 0.0, 1.0, 0.42, 0.55, DARK),
        (ALL[:4], 0.0, 1.0, 0.55, 0.86, SECOND),
        (ALL[:4], 0.0, 1.0, 0.86, 1.0, HAIR),
        ((TOP,), 0.0, 1.0, 0.0, 1.0, HAIR),
    ],
}

_RIDERLESS: list[Panel] = [
    (ALL, 0.0, 1.0, 0.0, 1.0, TYRE),
    (SIDES, 0.25, 0.75, 0.3, 0.6, BODY),
    (ALL[:4], 0.0, 1.0, 0.85, 1.0, DARK),
]


def _choice(rng: np.random.Generator, options: list[tuple[int, int, int]]) -> NDArray[np.float32]:
    return np.array(options[int(rng.integers(len(options)))], dtype=np.float32)


@functools.lru_cache(maxsize=8192)
def palette(cls: int, instance: int, seed: int = 0) -> NDArray[np.float32]:
    """Colours (slots, 3) of one object, fixed by (class, instance id, seed)."""
    rng = np.random.default_rng([seed, instance, cls, 0x636F6C])
    pal = np.zeros((_N_SLOTS, 3), dtype=np.float32)
    pal[GLASS] = (45, 55, 68)
    pal[TYRE] = (22, 22, 24)
    pal[LIGHT] = (245, 240, 215)
    pal[TAIL] = (190, 25, 25)
    pal[DARK] = (38, 38, 40)
    if cls == CAR:
        pal[BODY] = _choice(rng, _CAR_BODIES)
    elif cls == TRUCK:
        pal[BODY], pal[SECOND] = _choice(rng, _TRUCK_CABS), _choice(rng, _CARGO)
    elif cls == BUS:
        pal[BODY], pal[SECOND] = _choice(rng, _BUS), _choice(rng, _STRIPE)
    elif cls == TRAILER:
        pal[BODY], pal[SECOND] = _choice(rng, _CARGO), _choice(rng, _TRUCK_CABS)
    elif cls == PEDESTRIAN:
        pal[BODY], pal[SECOND] = _choice(rng, _CLOTHES), _choice(rng, _PANTS)
        pal[SKIN], pal[HAIR] = _choice(rng, _SKIN), _choice(rng, _HAIR)
    elif cls == MOTORCYCLE:
        pal[BODY], pal[SECOND], pal[HAIR] = (
            _choice(rng, _CAR_BODIES),
            _choice(rng, _PANTS),
            _choice(rng, _HELMET),
        )
    elif cls == BICYCLE:
        pal[BODY], pal[SECOND], pal[HAIR] = (
            _choice(rng, _CLOTHES),
            _choice(rng, _CLOTHES),
            _choice(rng, _HELMET),
        )
        pal[DARK] = _choice(rng, _PANTS)
    # Slight per-object variation so that same-coloured objects differ a little.
    pal[BODY] = np.clip(pal[BODY] * rng.uniform(0.92, 1.06), 0, 255)
    pal.setflags(write=False)
    return pal


# Panels are baked into slot tables sampled by (h, a); fine enough for the bus window pillars.
TABLE_A, TABLE_H = 512, 128


def _bake(panel_list: list[Panel], face: int, cls: int) -> NDArray[np.uint8]:
    a = (np.arange(TABLE_A) + 0.5) / TABLE_A
    h = (np.arange(TABLE_H) + 0.5) / TABLE_H
    slot = np.full((TABLE_H, TABLE_A), BODY, dtype=np.uint8)
    for faces, a0, a1, h0, h1, s in panel_list:
        if face in faces:
            slot[np.ix_((h >= h0) & (h < h1), (a >= a0) & (a < a1))] = s
    if cls == BUS and face in SIDES:
        # Window pillars every ninth of the length.
        pillars = np.mod(a * 9.0, 1.0) < 0.07
        rows = (h >= 0.5) & (h < 0.86)
        slot[np.ix_(rows, pillars & (a > 0.04) & (a < 0.96))] = BODY
    slot.setflags(write=False)
    return slot


@functools.lru_cache(maxsize=128)
def slot_table(cls: int, riderless: bool, face: int) -> NDArray[np.uint8]:
    """(TABLE_H, TABLE_A) palette slots of one face kind of a class."""
    return _bake(_RIDERLESS if riderless else _PANELS[cls], face, cls)


def is_riderless(cls: int, height: float) -> bool:
    """A parked bicycle is drawn without a rider; it is recognised by its low box."""
    return cls == BICYCLE and height < RIDERLESS_BICYCLE_HEIGHT
