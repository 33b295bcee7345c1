"""PyTorch backend: runs the tracker network eagerly on CPU or CUDA."""

from __future__ import annotations

import numpy as np
import torch

from syncl_ros.model.network import DecoderOutput, TrackerNet
from syncl_ros.tracking.interface import DecoderOutputs, TrackSlots


def to_decoder_outputs(out: DecoderOutput, net: TrackerNet) -> DecoderOutputs:
    """Last decoder layer of one frame (batch 1) -> host-side outputs for the runtime tracker."""
    rows = out.num_det + net.cfg.num_slots
    code = out.codes[-1, 0, :rows].float()
    return DecoderOutputs(
        scores=out.logits[-1, 0, :rows].float().sigmoid().cpu().numpy(),
        boxes=net.coder.to_boxes(code).cpu().numpy().astype(np.float64),
        refs=out.refs[-1, 0, :rows].float().cpu().numpy(),
        embeddings=out.embeddings[0, :rows].float().cpu().numpy(),
    )


class TorchBackend:
    name = "torch"

    def __init__(self, net: TrackerNet, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """(N, 3, H, W) float32 normalized images of one frame -> features (1, N, C, h, w)."""
        return self.net.encode(torch.from_numpy(images)[None].to(self.device))

    @torch.inference_mode()
    def decode(self, feats: torch.Tensor, img2lidar: np.ndarray, slots: TrackSlots) -> DecoderOutputs:
        def t(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a))[None].to(self.device, dtype)

        out = self.net.decode(
            feats, t(img2lidar), t(slots.embeddings), t(slots.refs), t(slots.mask, torch.bool)
        )
        return to_decoder_outputs(out, self.net)
