"""The order in which training sees its clips, as a function of the step.

A run resumed at step s must see the clips an uninterrupted run saw after step
s, so the sampler is never re-seeded on resume: it is the run's one seeded
stream, entered at the position of step s.
- One process: clips drawn with replacement from one endless seeded stream;
  step s starts s × batch_size draws into it.
- torchrun: DistributedSampler epochs (a shuffled partition per rank, reseeded
  by `set_epoch`); step s lies in epoch s // steps_per_epoch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sized
from typing import Any, cast

import torch
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
    data: Sized, seed: int, epoch: int, done_steps: int, batch_size: int, world: int = 1, rank: int = 0
) -> Sampler[int]:
    """The sampler of epoch `epoch`, without the `done_steps` batches already trained on."""
    inner: Sampler[int]
    if world > 1:
        # It only takes the length of `data`.
        dataset = cast("Dataset[Any]", data)
        distributed: DistributedSampler[Any] = DistributedSampler(dataset, world, rank, seed=seed)
        distributed.set_epoch(epoch)
        inner = distributed
    else:
        generator = torch.Generator().manual_seed(seed)
        inner = RandomSampler(data, replacement=True, num_samples=STREAM_LENGTH, generator=generator)
    return Skipped(inner, done_steps * batch_size) if done_steps else inner
