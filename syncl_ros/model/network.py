"""The tracker network: image encoder + PETR-style decoder over detection and track queries.

Two entry points mirror the two exported graphs:
- `encode(images)`: six images -> stride-16 features (heavy, stateless);
- `decode(features, img2lidar, track slots)`: detection queries (learned
  anchors, optionally plus queries seeded from the dense heatmap) and the S
  track slots go through the decoder; every layer predicts class logits and a
  box relative to its query's reference point, which the next layer refines.
What a track carries to the next frame is its output embedding and refined
reference point; `decode` turns the carried embedding into the track query
through a small learned update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from syncl_ros.model.backbone import STRIDE, Backbone, build_backbone
from syncl_ros.model.box_coder import CODE_DIM, BoxCoder
from syncl_ros.model.config import ModelConfig
from syncl_ros.model.decoder import MASKED, DecoderLayer, key_bias_from_mask, mlp
from syncl_ros.model.depth_position import DepthPositionEmbedding, expected_depth
from syncl_ros.model.fine_depth import FineDepthHead
from syncl_ros.model.position import PositionEmbedding3D, lid_depths, sine_embed


@dataclass
class DecoderTensors:
    """Every decoder layer's outputs for a batch, as torch tensors (the runtime tracker's numpy
    view of one frame's last layer is `syncl_ros.tracking.interface.DecoderOutputs`)."""

    logits: torch.Tensor  # (L, B, M, classes) per decoder layer; M = detection queries + slots (+ extra)
    codes: torch.Tensor  # (L, B, M, 10) metric box codes
    refs: torch.Tensor  # (L, B, M, 3) refined normalized reference points
    embeddings: torch.Tensor  # (B, M, C) last-layer query features
    num_det: int  # detection queries come first, then the S slots, then any extra (denoising) queries
    # Every layer's (B, M, C) query features, kept as the layers made them (no copy on decode).
    layer_embeddings: tuple[torch.Tensor, ...] = ()

    def exit_after(self, layer: int) -> DecoderTensors:
        """The outputs as if the decoder had stopped after `layer` (from 0), as early exit does."""
        if not self.layer_embeddings:
            raise ValueError("exit_after needs every layer's query features")
        end = layer + 1
        return DecoderTensors(
            self.logits[:end],
            self.codes[:end],
            self.refs[:end],
            self.layer_embeddings[layer],
            self.num_det,
            self.layer_embeddings[:end],
        )


@dataclass
class DecoderContext:
    """What every decoder layer of one frame reads besides its queries; fixed for the frame."""

    memory: torch.Tensor  # (B, T, C) image tokens of all cameras, T = N*h*w
    memory_pos: torch.Tensor  # (B, T, C) their 3D position embedding
    query_bias: torch.Tensor  # (B, 1 or M, M) additive self-attention bias (hidden keys, blind rows)
    memory_bias: torch.Tensor | None  # (B, 1, T) additive cross-attention bias (missing cameras)
    hidden: torch.Tensor | None  # (B, M) bool: rows that never score (seeds their track claimed)
    num_det: int  # detection rows ahead of the slots
    self_attention: bool = True


@dataclass
class DenseOutput:
    heatmap: torch.Tensor  # (B, N, classes, h, w) logits of object centers per camera
    depth: torch.Tensor  # (B, N, 1, h, w) depth of the center in metres (softplus)
    depth_logits: torch.Tensor | None = None  # (B, N, D, h, w) per-cell depth bins (model.depth_distribution)


def center_depth_head(dim: int) -> nn.Sequential:
    """The stride-16 center-depth head: 3x3 conv, ReLU, 1x1 conv to one raw depth per cell."""
    return nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(dim, 1, 1))


class TrackerNet(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.coder = BoxCoder(cfg.pc_range)
        self.backbone: Backbone = build_backbone(cfg.backbone, dim)
        # Only the selected embedding exists, so a checkpoint's keys say which one it was trained with.
        if cfg.position_embedding == "depth":
            self.depth_position = DepthPositionEmbedding(dim, cfg.pc_range, STRIDE)
        else:
            self.position = PositionEmbedding3D(dim, cfg.depth_bins, cfg.depth_range, cfg.pc_range, STRIDE)
        self.anchors = nn.Embedding(cfg.num_queries, 3)
        nn.init.uniform_(self.anchors.weight, 0.0, 1.0)
        self.det_content = nn.Embedding(cfg.num_queries, dim)
        pos_in = sine_embed(torch.zeros(1, 3), dim).shape[-1]
        self.query_pos = mlp(pos_in, dim, dim)
        self.track_update = mlp(dim, cfg.ffn_dim, dim)
        # A track query starts as its normalized carried embedding: detection training never
        # reaches this layer, and a random update would scramble what the tracking stage inherits.
        nn.init.zeros_(cast(nn.Linear, self.track_update[-1]).weight)
        nn.init.zeros_(cast(nn.Linear, self.track_update[-1]).bias)
        self.track_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            DecoderLayer(dim, cfg.num_heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.num_layers)
        )
        prior = -4.6  # class bias for a 1% prior: stable focal-loss start
        cls_heads = [mlp(dim, dim, cfg.num_classes) for _ in range(cfg.num_layers)]
        for head in cls_heads:
            nn.init.constant_(cast(nn.Linear, head[-1]).bias, prior)
        self.cls_heads = nn.ModuleList(cls_heads)
        self.reg_heads = nn.ModuleList(mlp(dim, dim, CODE_DIM) for _ in range(cfg.num_layers))
        if cfg.dense_heads:
            self.heatmap_head = nn.Sequential(
                nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(dim, cfg.num_classes, 1)
            )
            nn.init.constant_(cast(torch.Tensor, cast(nn.Conv2d, self.heatmap_head[-1]).bias), prior)
            if cfg.fine_center_depth:
                self.fine_depth_head = FineDepthHead(dim, self.backbone.stride8_channels)
            else:
                self.depth_head = center_depth_head(dim)
            self.dense_content = nn.Linear(dim, dim)
        if cfg.depth_distribution:
            self.depth_dist_head = nn.Sequential(
                nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(dim, cfg.depth_bins, 1)
            )
            self.register_buffer("bin_depths", lid_depths(cfg.depth_bins, *cfg.depth_range), persistent=False)

    # -- encoder ---------------------------------------------------------------

    @property
    def feature_channels(self) -> int:
        """Channels of what `encode` returns: the features, then the fine center depth if any."""
        return self.cfg.embed_dim + int(self.cfg.fine_center_depth)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, N, 3, H, W) normalized images -> (B, N, feature_channels, H/16, W/16) encoder output."""
        b, n = images.shape[:2]
        flat = images.flatten(0, 1)
        if self.cfg.fine_center_depth:
            f8, feats = self.backbone.levels(flat)
            feats = torch.cat([feats, self.fine_depth_head(feats, f8)], dim=1)
        else:
            feats = self.backbone(flat)
        return feats.reshape(b, n, *feats.shape[1:])

    def image_features(self, encoded: torch.Tensor) -> torch.Tensor:
        """The image features (B, N, C, h, w) of an encoder output (without its depth channel)."""
        return encoded[:, :, : self.cfg.embed_dim]

    def dense(self, feats: torch.Tensor) -> DenseOutput:
        """The dense heads on an encoder output (B, N, feature_channels, h, w)."""
        if not self.cfg.dense_heads:
            raise RuntimeError("this model was built without dense heads")
        b, n = feats.shape[:2]
        if feats.shape[2] != self.feature_channels:
            got, want = feats.shape[2], self.feature_channels
            raise ValueError(f"dense heads read the encoder output ({want} channels), not {got} channels")
        if self.cfg.fine_center_depth:  # computed by the encoder: its output's last channel
            raw = feats[:, :, self.cfg.embed_dim :].flatten(0, 1)
            flat = self.image_features(feats).flatten(0, 1)
        else:
            flat = feats.flatten(0, 1)
            raw = self.depth_head(flat)
        heat = self.heatmap_head(flat)
        depth = nn.functional.softplus(raw) + self.cfg.depth_range[0]
        logits = None
        if self.cfg.depth_distribution:
            bins = self.depth_dist_head(flat)
            logits = bins.reshape(b, n, *bins.shape[1:])
        return DenseOutput(heat.reshape(b, n, *heat.shape[1:]), depth.reshape(b, n, *depth.shape[1:]), logits)

    def pixel_depth(self, dense: DenseOutput) -> torch.Tensor:
        """(B, N, 1, h, w) depth per image cell: the distribution's mean when there is one, else the
        depth head's value (trained at object centers only)."""
        if dense.depth_logits is None:
            return dense.depth
        return expected_depth(dense.depth_logits, cast(torch.Tensor, self.bin_depths))

    # -- queries -----------------------------------------------------------------

    def _detection_queries(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        content = self.det_content.weight.unsqueeze(0).expand(b, -1, -1)
        refs = self.anchors.weight.clamp(0.0, 1.0)
        return content, refs.unsqueeze(0).expand(b, -1, -1)

    def _dense_queries(
        self,
        feats: torch.Tensor,
        img2lidar: torch.Tensor,
        dense: DenseOutput | None = None,
        camera_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k heatmap cells over the cameras in use -> (content, normalized refs); k is a constant
        (export). camera_mask (B, N): 1 for a camera whose image the frame holds."""
        dense = self.dense(feats) if dense is None else dense
        b, n, _, h, w = dense.heatmap.shape
        score = dense.heatmap.amax(dim=2)
        if camera_mask is not None:  # a missing camera's cells rank below every real one
            score = score + key_bias_from_mask(camera_mask)[..., None, None]
        score = score.reshape(b, n * h * w)
        idx = score.topk(self.cfg.dense_queries, dim=1).indices  # (B, k)
        cam, cell = idx // (h * w), idx % (h * w)
        v, u = (cell // w).float(), (cell % w).float()
        depth = dense.depth.reshape(b, n * h * w).gather(1, idx)
        uvd = torch.stack(
            [(u + 0.5) * STRIDE * depth, (v + 0.5) * STRIDE * depth, depth, torch.ones_like(depth)], dim=-1
        )  # (B, k, 4)
        mats = img2lidar.gather(1, cam[..., None, None].expand(-1, -1, 4, 4))  # (B, k, 4, 4)
        xyz = torch.matmul(mats, uvd.unsqueeze(-1)).squeeze(-1)[..., :3]
        refs = self.coder.normalize(xyz).clamp(0.0, 1.0)
        tokens = feats.permute(0, 1, 3, 4, 2).reshape(b, n * h * w, -1)
        content = self.dense_content(tokens.gather(1, idx[..., None].expand(-1, -1, tokens.shape[-1])))
        return content, refs.detach()

    def reanchor(
        self, track_ref: torch.Tensor, seed_ref: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each track's reference moved to the nearest heatmap seed within ``track_reanchor_m``.

        track_ref (B, S, 3) and seed_ref (B, k, 3) normalized; distances are planar, in metres.
        Returns the references, each track's nearest seed (B, S) and whether it took it (B, S).
        """
        idx, took, _ = self._nearest_seed(track_ref, seed_ref)
        return self._move_to_seeds(track_ref, seed_ref, idx, took), idx, took

    @staticmethod
    def _move_to_seeds(
        track_ref: torch.Tensor, seed_ref: torch.Tensor, idx: torch.Tensor, took: torch.Tensor
    ) -> torch.Tensor:
        """Each track's reference replaced by its seed's (idx) where it took one."""
        nearest = seed_ref.gather(1, idx[..., None].expand(-1, -1, 3))
        return torch.where(took[..., None], nearest, track_ref)

    def _nearest_seed(
        self, track_ref: torch.Tensor, seed_ref: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(nearest seed (B, S), within the gate (B, S), squared distance to it (B, S))."""
        t = self.coder.denormalize(track_ref)[..., None, :2]
        d = self.coder.denormalize(seed_ref)[..., None, :, :2]
        dist2 = ((t - d) ** 2).sum(-1)  # (B, S, k); written out rather than cdist for a plain graph
        best, idx = dist2.min(dim=-1)
        gate = self.cfg.track_reanchor_m
        return idx, best < gate * gate, best

    def claim_seeds(
        self, track_ref: torch.Tensor, seed_ref: torch.Tensor, live: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One live track per seed: (its seed (B, S), whether it holds one (B, S), claimed seeds (B, k)).

        A seed that several live tracks reach goes to the nearest of them; the others keep their
        propagated point. Fixed shapes throughout (Equal, Where, ArgMin) for the exported graph.
        """
        idx, took, best = self._nearest_seed(track_ref, seed_ref)
        s, k = idx.shape[1], seed_ref.shape[1]
        took = took & live
        hit = (idx[..., None] == torch.arange(k, device=idx.device)) & took[..., None]  # (B, S, k)
        far = torch.full_like(best, self.cfg.track_reanchor_m**2 + 1.0)[..., None]
        winner = torch.where(hit, best[..., None], far).argmin(dim=1)  # (B, k)
        holds = took & (winner.gather(1, idx) == torch.arange(s, device=idx.device))
        claimed = (hit & holds[..., None]).float().amax(dim=1) > 0.0
        return idx, holds, claimed

    def _track_queries(
        self,
        track_emb: torch.Tensor,
        track_ref: torch.Tensor,
        track_mask: torch.Tensor,
        seeds: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Track queries (content, reference) from the carried embeddings and propagated points,
        and the seeds the tracks claimed (B, k) (None unless ``track_claims_seed``).

        A track starts from its normalized memory. With ``track_reanchor_m`` it moves to its nearest
        heatmap seed (content (B, k, C), refs (B, k, 3)), and with ``track_seed_content`` its query
        is then the seed's detection content plus the update of its memory (without that update
        when ``track_seed_memory`` is off): what the decoder learnt to localize and score, told
        which object to keep.
        """
        update = self.track_update(track_emb)
        content = self.track_norm(track_emb + update)
        if seeds is None or self.cfg.track_reanchor_m <= 0.0:
            return content, track_ref, None
        seed_c, seed_r = seeds
        claimed = None
        if self.cfg.track_claims_seed:
            idx, took, claimed = self.claim_seeds(track_ref, seed_r, track_mask > 0)
        else:
            idx, took, _ = self._nearest_seed(track_ref, seed_r)
        track_ref = self._move_to_seeds(track_ref, seed_r, idx, took)
        if self.cfg.track_seed_content:
            at_seed = seed_c.gather(1, idx[..., None].expand(-1, -1, seed_c.shape[-1]))
            if self.cfg.track_seed_memory:
                at_seed = at_seed + update
            content = torch.where(took[..., None], at_seed, content)
        return content, track_ref, claimed

    # -- decoder -------------------------------------------------------------------

    def memory(
        self, feats: torch.Tensor, img2lidar: torch.Tensor, dense: DenseOutput | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image tokens of all cameras and their 3D position embedding, (B, N*h*w, C) each.

        dense: the dense heads' output on `feats` (the depth-aware embedding reads its depth;
        computed here when not given)."""
        b, n, c, h, w = feats.shape
        if self.cfg.position_embedding == "depth":
            depth = self.pixel_depth(self.dense(feats) if dense is None else dense)
            pos = self.depth_position(img2lidar, depth).reshape(b, n * h * w, c)
        else:
            pos = self.position(img2lidar, h, w).reshape(b, n * h * w, c)
        return feats.permute(0, 1, 3, 4, 2).reshape(b, n * h * w, c), pos

    def decode(
        self,
        feats: torch.Tensor,
        img2lidar: torch.Tensor,
        track_emb: torch.Tensor,
        track_ref: torch.Tensor,
        track_mask: torch.Tensor,
        self_attention: bool = True,
        extra: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        dense: DenseOutput | None = None,
        camera_mask: torch.Tensor | None = None,
    ) -> DecoderTensors:
        """Decode one frame: `decoder_inputs`, then every layer in turn (`decoder_layer`).

        track_emb (B, S, C), track_ref (B, S, 3) normalized, track_mask (B, S) live slots.
        extra: optional (content (B, E, C), refs (B, E, 3), attention bias (B, M, M)) for training-time
        queries (denoising) that must stay invisible to the others.
        dense: `self.dense(feats)` when the caller already has it (training reuses it for its loss).
        camera_mask (B, N): 1 for each camera whose image the frame holds; a missing camera's image
        tokens are hidden from the cross-attention and its heatmap seeds none (None: all cameras).
        """
        x, ref, context = self.decoder_inputs(
            feats, img2lidar, track_emb, track_ref, track_mask, self_attention, extra, dense, camera_mask
        )
        logits, codes, refs, xs = [], [], [], []
        for k in range(len(self.layers)):
            x, logit, code, new_ref = self.decoder_layer(k, x, ref, context)
            logits.append(logit)
            codes.append(code)
            refs.append(new_ref)
            xs.append(x)
            ref = new_ref.detach()
        return DecoderTensors(
            torch.stack(logits), torch.stack(codes), torch.stack(refs), x, context.num_det, tuple(xs)
        )

    def decoder_inputs(
        self,
        feats: torch.Tensor,
        img2lidar: torch.Tensor,
        track_emb: torch.Tensor,
        track_ref: torch.Tensor,
        track_mask: torch.Tensor,
        self_attention: bool = True,
        extra: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        dense: DenseOutput | None = None,
        camera_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderContext]:
        """The first layer's queries (content (B, M, C), normalized refs (B, M, 3)) and what every
        layer reads besides them; arguments as `decode`."""
        b = feats.shape[0]
        if dense is None and (self.cfg.dense_queries or self.cfg.position_embedding == "depth"):
            dense = self.dense(feats)  # once, for the seeds and the depth-aware embedding
        feats = self.image_features(feats)
        det_c, det_r = self._detection_queries(b)
        parts_c, parts_r = [det_c], [det_r]
        seeds = None
        if self.cfg.dense_queries:
            seeds = self._dense_queries(feats, img2lidar, dense, camera_mask)
            parts_c.append(seeds[0])
            parts_r.append(seeds[1])
        num_det = sum(p.shape[1] for p in parts_c)
        track_c, track_ref, claimed = self._track_queries(track_emb, track_ref, track_mask, seeds)
        parts_c.append(track_c)
        parts_r.append(track_ref)
        valid = [torch.ones(b, num_det, device=feats.device), track_mask.float()]
        if extra is not None:
            parts_c.append(extra[0])
            parts_r.append(extra[1])
            valid.append(torch.ones(b, extra[0].shape[1], device=feats.device))
        x, ref = torch.cat(parts_c, 1), torch.cat(parts_r, 1)
        visible = torch.cat(valid, 1)
        hidden = None if claimed is None else self._hidden_rows(claimed, det_c.shape[1], x.shape[1])
        if hidden is not None:  # a claimed seed's row is replaced by its track's row
            visible = visible * (~hidden).float()
        bias = key_bias_from_mask(visible)[:, None, :]
        if self.cfg.track_attention == "asymmetric":
            bias = bias + self.track_rows_blind(num_det, track_c.shape[1], x.shape[1], x.device)
        if extra is not None:
            bias = bias + extra[2]
        memory, memory_pos = self.memory(feats, img2lidar, dense)
        memory_bias = None
        if camera_mask is not None:
            b, n, _, h, w = feats.shape
            per_token = camera_mask[:, :, None].expand(b, n, h * w).reshape(b, n * h * w)
            memory_bias = key_bias_from_mask(per_token)[:, None, :]
        context = DecoderContext(memory, memory_pos, bias, memory_bias, hidden, num_det, self_attention)
        return x, ref, context

    def decoder_layer(
        self, k: int, x: torch.Tensor, ref: torch.Tensor, context: DecoderContext
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Layer k (from 0) on queries x (B, M, C) at normalized refs (B, M, 3) -> its output
        features, class logits, metric box codes and refined refs (the next layer's refs)."""
        c = context
        pos = self.query_pos(sine_embed(ref, self.cfg.embed_dim))
        x = self.layers[k](x, pos, c.memory, c.memory_pos, c.query_bias, c.self_attention, c.memory_bias)
        code, new_ref = self.coder.decode(self.reg_heads[k](x), ref)
        logit = self.cls_heads[k](x)
        if c.hidden is not None:  # a claimed seed's row never scores: no birth, no loss
            logit = torch.where(c.hidden[..., None], torch.full_like(logit, MASKED), logit)
        return x, logit, code, new_ref

    @staticmethod
    def track_rows_blind(num_det: int, num_slots: int, num_rows: int, device: torch.device) -> torch.Tensor:
        """(1, M, M) additive bias: MASKED where a track row (query) would attend a detection row
        (key), 0 elsewhere; a constant of the static shapes (the exported graph folds it)."""
        rows = torch.arange(num_rows, device=device)
        is_track = (rows >= num_det) & (rows < num_det + num_slots)
        blocked = is_track[:, None] & (rows < num_det)[None, :]
        return torch.where(blocked, MASKED, 0.0)[None]

    @staticmethod
    def _hidden_rows(claimed: torch.Tensor, num_anchors: int, num_rows: int) -> torch.Tensor:
        """(B, M) True at the detection rows of claimed seeds."""
        b, k = claimed.shape
        before = torch.zeros(b, num_anchors, dtype=torch.bool, device=claimed.device)
        after = torch.zeros(b, num_rows - num_anchors - k, dtype=torch.bool, device=claimed.device)
        return torch.cat([before, claimed, after], 1)

    def forward(
        self,
        images: torch.Tensor,
        img2lidar: torch.Tensor,
        track_emb: torch.Tensor,
        track_ref: torch.Tensor,
        track_mask: torch.Tensor,
    ) -> DecoderTensors:
        return self.decode(self.encode(images), img2lidar, track_emb, track_ref, track_mask)
