"""Depth-aware 3D position embedding of image tokens (3DPPE's idea).

PETR's frustum embedding (position.py) spreads every feature cell over all
depth bins, whatever the image says: a token only knows its camera ray. Here
each cell is lifted to one 3D point at its predicted depth, mapped into the
model frame with img2lidar (inverted on the host, as for the frustum),
normalized over the detection range, and embedded the way the decoder embeds
its queries' reference points (sinusoidal code, then a small MLP), so a token
says where in 3D it looks, not only along which ray.

The predicted depth is detached: the depth head learns depth from the lidar
(or the object centers), and the embedding learns to use it, rather than the
detection loss bending the depth estimate toward whatever helps attention.
"""

from __future__ import annotations

import torch
from torch import nn

from syncl_ros.model.decoder import mlp
from syncl_ros.model.position import sine_embed


def expected_depth(logits: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """Mean of a per-cell depth distribution: logits (B, N, D, h, w), bin depths (D,) -> (B, N, 1, h, w)."""
    prob = logits.softmax(dim=2)
    return (prob * depths.view(1, 1, -1, 1, 1)).sum(dim=2, keepdim=True)


class DepthPositionEmbedding(nn.Module):
    lo: torch.Tensor
    span: torch.Tensor

    def __init__(self, embed_dim: int, pc_range: tuple[float, ...], stride: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.stride = stride
        self.register_buffer("lo", torch.tensor(pc_range[:3], dtype=torch.float32), persistent=False)
        self.register_buffer(
            "span", torch.tensor(pc_range[3:], dtype=torch.float32) - self.lo, persistent=False
        )
        pos_in = sine_embed(torch.zeros(1, 3), embed_dim).shape[-1]
        self.mlp = mlp(pos_in, embed_dim * 2, embed_dim)

    def points(self, img2lidar: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Model-frame points (B, N, h, w, 3) of the cell centers at depth (B, N, 1, h, w)."""
        b, n, _, h, w = depth.shape
        v = (torch.arange(h, device=depth.device, dtype=torch.float32) + 0.5) * self.stride
        u = (torch.arange(w, device=depth.device, dtype=torch.float32) + 0.5) * self.stride
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        d = depth[:, :, 0]
        uvd = torch.stack([uu * d, vv * d, d, torch.ones_like(d)], dim=-1)  # (B, N, h, w, 4)
        # A plain matmul (not einsum) keeps the exported graph simple for TensorRT.
        xyz = torch.matmul(uvd.reshape(b, n, h * w, 4), img2lidar.transpose(-1, -2))[..., :3]
        return xyz.reshape(b, n, h, w, 3)

    def forward(self, img2lidar: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """img2lidar (B, N, 4, 4), depth (B, N, 1, h, w) metres -> embedding (B, N, h, w, C)."""
        xyz = self.points(img2lidar, depth.detach())
        norm = ((xyz - self.lo) / self.span).clamp(0.0, 1.0)
        out: torch.Tensor = self.mlp(sine_embed(norm, self.embed_dim))
        return out
