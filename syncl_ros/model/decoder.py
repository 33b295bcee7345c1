"""Transformer decoder over detection and track queries (PETR-style).

Each layer: self-attention among all queries -> cross-attention to the image
tokens of all six cameras -> FFN. The self-attention can be skipped per call:
SynCL's C-decoder is this same decoder, same weights, without self-attention
(training only). Attention takes additive masks; in PyTorch it runs the fused
`scaled_dot_product_attention` kernel (a quarter faster forward + backward on a CPU
core, same result within float rounding), and in an ONNX export it is written out
with matmul + softmax so the graph stays simple for TensorRT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASKED = -1e4  # additive mask value; finite so FP16 never turns a row into NaN


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """q (B, Lq, C), k/v (B, Lk, C); bias (B, Lq or 1, Lk) additive (0 or MASKED)."""
        qh, kh, vh = self._split(self.q(q)), self._split(self.k(k)), self._split(self.v(v))
        mask = None if bias is None else bias.unsqueeze(1)
        if torch.onnx.is_in_onnx_export():
            scores = torch.matmul(qh, kh.transpose(-1, -2)) * (qh.shape[-1] ** -0.5)
            out = torch.matmul((scores if mask is None else scores + mask).softmax(dim=-1), vh)
        else:
            out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
        b, _, lq, _ = out.shape
        result: torch.Tensor = self.out(out.transpose(1, 2).reshape(b, lq, -1))
        return result


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        query_bias: torch.Tensor,
        self_attention: bool = True,
        memory_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self_attention:
            qk = x + pos
            x = self.norm1(x + self.drop(self.self_attn(qk, qk, x, query_bias)))
        x = self.norm2(x + self.drop(self.cross_attn(x + pos, memory + memory_pos, memory, memory_bias)))
        result: torch.Tensor = self.norm3(x + self.drop(self.ffn(x)))
        return result


def key_bias_from_mask(valid: torch.Tensor) -> torch.Tensor:
    """Bool/float validity (B, L) -> additive attention bias (B, L)."""
    return (1.0 - valid.float()) * MASKED


def mlp(dim_in: int, hidden: int, dim_out: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = dim_in
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
        d = hidden
    mods.append(nn.Linear(d, dim_out))
    return nn.Sequential(*mods)
