"""PETR-style 3D position embedding of image features.

Every feature cell is lifted along its camera ray to `depth_bins` points
(linear-increasing depths), mapped into the model frame with img2lidar (the
inverse of lidar2img, computed on the host), normalized over the detection
range, and embedded by a small MLP. The embedding tells the decoder's cross
attention where in 3D each image token looks.
"""

from __future__ import annotations

import torch
from torch import nn

from syncl_ros.model.box_coder import inverse_sigmoid


def lid_depths(bins: int, near: float, far: float) -> torch.Tensor:
    """Linear-increasing discretization (denser near the car), as PETR uses."""
    index = torch.arange(bins, dtype=torch.float32)
    step = (far - near) / (bins * (bins + 1))
    return near + step * index * (index + 1)


class PositionEmbedding3D(nn.Module):
    depths: torch.Tensor
    lo: torch.Tensor
    span: torch.Tensor

    def __init__(
        self,
        embed_dim: int,
        depth_bins: int,
        depth_range: tuple[float, float],
        pc_range: tuple[float, ...],
        stride: int,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.register_buffer("depths", lid_depths(depth_bins, *depth_range), persistent=False)
        self.register_buffer("lo", torch.tensor(pc_range[:3], dtype=torch.float32), persistent=False)
        self.register_buffer(
            "span", torch.tensor(pc_range[3:], dtype=torch.float32) - self.lo, persistent=False
        )
        self.mlp = nn.Sequential(
            nn.Linear(depth_bins * 3, embed_dim * 2),
            nn.ReLU(inplace=True),
            nn.Linear(embed_dim * 2, embed_dim),
        )

    def frustum(self, h: int, w: int) -> torch.Tensor:
        """(h, w, D, 4) homogeneous image points [u*d, v*d, d, 1] at the feature cells' centers."""
        device = self.depths.device
        v = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * self.stride
        u = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * self.stride
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        d = self.depths.view(1, 1, -1).expand(h, w, -1)
        uu, vv = uu[..., None].expand_as(d), vv[..., None].expand_as(d)
        return torch.stack([uu * d, vv * d, d, torch.ones_like(d)], dim=-1)

    def forward(self, img2lidar: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """img2lidar (B, N, 4, 4) -> embedding (B, N, h, w, C)."""
        pts = self.frustum(h, w)  # (h, w, D, 4)
        b, n = img2lidar.shape[:2]
        # A plain matmul (not einsum) keeps the exported graph simple for TensorRT.
        xyz = torch.matmul(pts.reshape(1, 1, -1, 4), img2lidar.transpose(-1, -2))[..., :3]
        xyz = xyz.reshape(b, n, h, w, -1, 3)
        norm = ((xyz - self.lo) / self.span).clamp(0.0, 1.0)
        feats = inverse_sigmoid(norm).reshape(b, n, h, w, -1)
        out: torch.Tensor = self.mlp(feats)
        return out


def sine_embed(points: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of normalized 3D points (…, 3) -> (…, 3 * (dim // 3 rounded to even))."""
    per_axis = (dim // 3) // 2 * 2
    freqs = temperature ** (
        2 * (torch.arange(per_axis // 2, device=points.device, dtype=torch.float32)) / per_axis
    )
    angles = points[..., None] * 2 * torch.pi / freqs  # (…, 3, per_axis / 2)
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return emb.flatten(-2)
