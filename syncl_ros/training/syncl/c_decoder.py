"""SynCL's C-decoder: the inference decoder's weights, run with self-attention skipped.

Without self-attention no query sees the others, so several detection queries can
answer for the same object: the C-decoder's detection queries are matched
one-to-many to the persistent objects (`syncl_ros.training.syncl.matching`).
It shares every weight with the S-decoder (the one used at inference), so it adds
no parameters, and it runs only in training.
"""

from __future__ import annotations

import torch

from syncl_ros.model.network import DecoderTensors, DenseOutput, TrackerNet


def c_decode(
    net: TrackerNet,
    feats: torch.Tensor,
    img2lidar: torch.Tensor,
    track_emb: torch.Tensor,
    track_ref: torch.Tensor,
    track_mask: torch.Tensor,
    dense: DenseOutput | None = None,
) -> DecoderTensors:
    """One frame through the C-decoder; the arguments are those of `TrackerNet.decode`."""
    return net.decode(feats, img2lidar, track_emb, track_ref, track_mask, self_attention=False, dense=dense)
