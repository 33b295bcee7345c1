"""Fixed-size storage of the S track slots, one array per attribute.

A structure of arrays keeps every per-frame step a handful of vectorized
numpy operations, whatever S is; free slots hold neutral values (zero
embedding, reference 0.5) so they can be handed to the decoder as they are.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from syncl_ros.boxes import BOX_DIM
from syncl_ros.tracking.interface import FREE_REF, REF_DIM, UUID_BYTES


class SlotTable:
    def __init__(self, num_slots: int, embed_dim: int) -> None:
        self.num_slots = num_slots
        self.embed_dim = embed_dim
        self.mask = np.zeros(num_slots, dtype=bool)
        self.embeddings = np.zeros((num_slots, embed_dim), dtype=np.float32)
        self.refs = np.full((num_slots, REF_DIM), FREE_REF, dtype=np.float32)
        self.boxes = np.zeros((num_slots, BOX_DIM), dtype=np.float64)
        self.scores = np.zeros(num_slots, dtype=np.float64)
        self.labels = np.zeros(num_slots, dtype=np.int64)
        self.track_ids = np.zeros(num_slots, dtype=np.int64)
        self.uuids = np.zeros((num_slots, UUID_BYTES), dtype=np.uint8)
        self.age = np.zeros(num_slots, dtype=np.int64)
        self.hits = np.zeros(num_slots, dtype=np.int64)
        self.missed = np.zeros(num_slots, dtype=np.int64)  # frames since the last confirmation
        self.seen_xy = np.zeros((num_slots, 2), dtype=np.float64)  # world center when last confirmed
        self.seen_ns = np.zeros(num_slots, dtype=np.int64)  # time of that confirmation

    def free(self, which: NDArray[np.bool_] | NDArray[np.int64]) -> None:
        """Release the slots selected by a boolean mask or an index array."""
        self.mask[which] = False
        self.embeddings[which] = 0.0
        self.refs[which] = FREE_REF
        self.boxes[which] = 0.0
        self.scores[which] = 0.0
        self.labels[which] = 0
        self.track_ids[which] = 0
        self.uuids[which] = 0
        self.age[which] = 0
        self.hits[which] = 0
        self.missed[which] = 0
        self.seen_xy[which] = 0.0
        self.seen_ns[which] = 0

    def clear(self) -> None:
        self.free(np.ones(self.num_slots, dtype=bool))

    def free_indices(self) -> NDArray[np.int64]:
        return np.flatnonzero(~self.mask)

    def live_indices(self) -> NDArray[np.int64]:
        return np.flatnonzero(self.mask)
