"""The order in which training sees its clips, as a function of the step.

A run resumed at step s must see the clips an uninterrupted run saw after step
s, so the sampler is never re-seeded on resume: it is the run's one seeded
stream, entered at the position of step s.
- One process: clips drawn with replacement from one endless seeded stream
  (uniform, or with class-balancing weights); step s starts s × batch_size
  draws into it.
- torchrun: DistributedSampler epochs (a shuffled partition per rank, reseeded
  by `set_epoch`); step s lies in epoch s // steps_per_epoch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sized
from typing import Any, cast

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset, DistributedSampler, RandomSampler, Sampler

STREAM_LENGTH = 10**9  # draws of the single-process stream: more than any run takes


class Skipped(Sampler[int]):
    """`inner`'s indices without the first `skip`."""

    def __init__(self, inner: Sampler[int], skip: int) -> None:
        self.inner, self.skip = inner, skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.inner), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)  # type: ignore[arg-type]


class WeightedStream(Sampler[int]):
    """An endless seeded stream of indices drawn with replacement in proportion to `weights`.

    torch's WeightedRandomSampler draws its whole length in one call (8 GB for this stream's
    10^9 draws), so the draws are made here in small blocks from the same seeded generator.
    """

    BLOCK = 1024

    def __init__(self, weights: NDArray[np.float64], generator: torch.Generator) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        for _ in range(0, STREAM_LENGTH, self.BLOCK):
            block = torch.multinomial(self.weights, self.BLOCK, replacement=True, generator=self.generator)
            yield from block.tolist()

    def __len__(self) -> int:
        return STREAM_LENGTH


def steps_per_epoch(size: int, batch_size: int, world: int) -> int | None:
    """Optimizer steps in one DistributedSampler epoch; None for the endless single-process stream."""
    if world == 1:
        return None
    return math.ceil(math.ceil(size / world) / batch_size)


def position(step: int, size: int, batch_size: int, world: int) -> tuple[int, int]:
    """(epoch, steps already taken in it) at `step`."""
    per_epoch = steps_per_epoch(size, batch_size, world)
    return (0, step) if per_epoch is None else divmod(step, per_epoch)


def clip_sampler(
    data: Sized,
    seed: int,
    epoch: int,
    done_steps: int,
    batch_size: int,
    world: int = 1,
    rank: int = 0,
    weights: NDArray[np.float64] | None = None,
) -> Sampler[int]:
    """The sampler of epoch `epoch`, without the `done_steps` batches already trained on.

    `weights` (one per clip; one process only) draw the clips in proportion to them.
    """
    inner: Sampler[int]
    if weights is not None:
        if world > 1:
            raise ValueError("weighted clip sampling (train.class_balance) runs in one process only")
        if len(weights) != len(data):
            raise ValueError(f"{len(weights)} clip weights for {len(data)} clips")
        inner = WeightedStream(weights, torch.Generator().manual_seed(seed))
    elif world > 1:
        # It only takes the length of `data`.
        dataset = cast("Dataset[Any]", data)
        distributed: DistributedSampler[Any] = DistributedSampler(dataset, world, rank, seed=seed)
        distributed.set_epoch(epoch)
        inner = distributed
    else:
        generator = torch.Generator().manual_seed(seed)
        inner = RandomSampler(data, replacement=True, num_samples=STREAM_LENGTH, generator=generator)
    return Skipped(inner, done_steps * batch_size) if done_steps else inner
