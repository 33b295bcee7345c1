"""Class-balanced clip sampling, as CBGS (class-balanced grouping and sampling) does for nuScenes.

mAP averages the classes, but a rare class (buses, trailers: about 2 % of the boxes each) is in
few training clips. CBGS draws each class's clips equally often: every class present gets the
same share of the draws, spread uniformly over the clips that hold it. A clip's weight is
therefore the sum, over the classes it holds, of 1 / (classes × clips holding that class); a clip
without any object is never drawn (as in CBGS).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray


def balanced_weights(clip_classes: Sequence[Iterable[int]]) -> NDArray[np.float64]:
    """(clips,) drawing probabilities that give every class present the same share of draws."""
    sets = [set(c) for c in clip_classes]
    holding: dict[int, int] = {}
    for classes in sets:
        for c in classes:
            holding[c] = holding.get(c, 0) + 1
    if not holding:
        raise ValueError("class-balanced sampling needs training clips with objects; none has any")
    share = 1.0 / len(holding)
    weights = np.array([sum(share / holding[c] for c in classes) for classes in sets], dtype=np.float64)
    total: float = weights.sum()  # 1 up to rounding: each class contributes exactly `share`
    return weights / total


def class_draw_shares(
    clip_classes: Sequence[Iterable[int]], weights: NDArray[np.float64]
) -> dict[int, float]:
    """Expected share of draws holding each class: uniform weights give the share of clips that
    hold it; balanced ones raise the rare classes toward the common ones (logged at the start)."""
    out: dict[int, float] = {}
    for classes, w in zip(clip_classes, weights, strict=True):
        for c in set(classes):
            out[c] = out.get(c, 0.0) + float(w)
    return out
