"""The decoder cut after every layer, for early exit: graphs that can stop after any layer.

`FirstLayerGraph`: the decoder graph's inputs -> layer 1's outputs and the frame's context
(image memory and its position embedding, attention biases, hidden rows), which every further
layer reads. `NextLayerGraph(k)`: the previous layer's embeddings and refs plus that context ->
layer k's outputs. Chained, they compute what the single decoder graph (export.DecoderGraph)
computes, layer by layer, with the same static shapes and operators; tensor names are in
manifest.py (LAYER_QUERIES, LAYER_CONTEXT).
"""

from __future__ import annotations

import torch
from torch import nn

from syncl_ros.model.network import DecoderContext, TrackerNet

LayerOutputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class FirstLayerGraph(nn.Module):
    """Query preparation, image memory and decoder layer 1 with its heads."""

    def __init__(self, net: TrackerNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        features: torch.Tensor,
        img2lidar: torch.Tensor,
        track_embeddings: torch.Tensor,
        track_refs: torch.Tensor,
        track_mask: torch.Tensor,
        camera_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        x, ref, context = self.net.decoder_inputs(
            features, img2lidar, track_embeddings, track_refs, track_mask, camera_mask=camera_mask
        )
        x, logit, code, new_ref = self.net.decoder_layer(0, x, ref, context)
        assert context.memory_bias is not None  # the camera mask is always given
        outputs = (logit.sigmoid(), code, new_ref, x)
        shared = (context.memory, context.memory_pos, context.query_bias, context.memory_bias)
        hidden = () if context.hidden is None else (context.hidden.float(),)  # as 0/1: plain I/O types
        return outputs + shared + hidden


class NextLayerGraph(nn.Module):
    """Decoder layer k (from 1; 0 is the first layer's) with its heads."""

    def __init__(self, net: TrackerNet, k: int) -> None:
        super().__init__()
        if not 1 <= k < net.cfg.num_layers:
            raise ValueError(f"layer index {k}: this model's further layers are 1..{net.cfg.num_layers - 1}")
        self.net = net
        self.k = k

    def forward(
        self,
        query_features: torch.Tensor,
        query_refs: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        query_bias: torch.Tensor,
        memory_bias: torch.Tensor,
        hidden_rows: torch.Tensor | None = None,
    ) -> LayerOutputs:
        hidden = None if hidden_rows is None else hidden_rows > 0.5
        num_det = 0  # not read by a layer
        context = DecoderContext(memory, memory_pos, query_bias, memory_bias, hidden, num_det)
        x, logit, code, new_ref = self.net.decoder_layer(self.k, query_features, query_refs, context)
        return logit.sigmoid(), code, new_ref, x
