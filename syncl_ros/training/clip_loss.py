"""One training clip through the tracker with the SynCL strategy.

Frame by frame, as at inference, the network sees the six images plus the
track slots carried from the previous frame. Per frame and decoder layer:
- S-decoder (the inference decoder): detection queries are matched one-to-one
  to new-born objects; track slots keep their object by instance id (or learn
  "no object" once it is gone);
- C-decoder (same weights, self-attention skipped; `syncl.hybrid_matching`):
  track slots by id, detection queries one-to-many (at most k) to persistent
  objects, thinned by the GMM query filter (`syncl.gmm_filter`);
- instance-aware contrastive loss between the C-decoder's matched detection
  embeddings (through train-only projection layers) and the track embeddings
  of the same objects (`syncl.contrastive`);
- convergence aids: dense heatmap/depth losses, Co-DETR-style one-to-many
  dense box supervision, query denoising.
Matched new-born detections become track slots for the next frame; gradients
flow through the carried embeddings across the clip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import torch
from torch import nn

from syncl_ros.experiment import Experiment
from syncl_ros.geometry import Transform, relative_motion
from syncl_ros.model.network import DecoderOutput, TrackerNet
from syncl_ros.tracking.motion import propagate_boxes, refs_from_boxes
from syncl_ros.training.coaux import AuxBoxHead, aux_loss, aux_targets
from syncl_ros.training.data import FrameSample
from syncl_ros.training.denoising import DenoisingQueries, make_denoising
from syncl_ros.training.dense import dense_loss, dense_targets
from syncl_ros.training.losses import (
    ContrastiveProjector,
    box_l1_loss,
    kernel_contrastive_loss,
    sigmoid_focal_loss,
)
from syncl_ros.training.matching import DecoderTargets, HybridTargets, hybrid_assignments


def _float32(out: DecoderOutput) -> DecoderOutput:
    return replace(
        out,
        logits=out.logits.float(),
        codes=out.codes.float(),
        refs=out.refs.float(),
        embeddings=out.embeddings.float(),
    )


class TrainModule(nn.Module):
    """The network plus the layers that exist only during training."""

    def __init__(self, experiment: Experiment) -> None:
        super().__init__()
        self.experiment = experiment
        cfg = experiment.model
        self.net = TrackerNet(cfg)
        self.train_only = nn.ModuleDict(
            {
                "projector": ContrastiveProjector(cfg.embed_dim),
                "dn_labels": nn.Embedding(cfg.num_classes, cfg.embed_dim),
                "aux_box_head": AuxBoxHead(cfg.embed_dim, cfg.num_classes),
            }
        )

    def forward(self, clip: list[FrameSample], generator: torch.Generator) -> dict[str, torch.Tensor]:
        return ClipRun(self, generator).run(clip)


@dataclass
class Slots:
    emb: torch.Tensor  # (S, C)
    ref: torch.Tensor  # (S, 3)
    instance: torch.Tensor  # (S,) long, -1 = free
    box: np.ndarray  # (S, 9) last decoded box (for propagation)

    @staticmethod
    def empty(num: int, dim: int, device: torch.device) -> Slots:
        return Slots(
            torch.zeros(num, dim, device=device),
            torch.full((num, 3), 0.5, device=device),
            torch.full((num,), -1, dtype=torch.long, device=device),
            np.zeros((num, 9)),
        )

    @property
    def mask(self) -> torch.Tensor:
        return self.instance >= 0


class ClipRun:
    def __init__(self, module: TrainModule, generator: torch.Generator) -> None:
        self.m = module
        self.net: TrackerNet = module.net
        self.exp = module.experiment
        self.gen = generator
        self.device = next(module.parameters()).device

    def run(self, clip: list[FrameSample]) -> dict[str, torch.Tensor]:
        cfg = self.exp.model
        slots = Slots.empty(cfg.num_slots, cfg.embed_dim, self.device)
        totals: dict[str, torch.Tensor] = {}
        prev: FrameSample | None = None
        for sample in clip:
            if prev is not None:
                slots = self._propagate(slots, prev, sample)
            parts, slots = self._frame(sample, slots)
            for name, value in parts.items():
                share = value / len(clip)
                totals[name] = totals[name] + share if name in totals else share
            prev = sample
        totals["loss"] = torch.stack(list(totals.values())).sum()
        return totals

    # -- per frame ------------------------------------------------------------------

    def _propagate(self, slots: Slots, prev: FrameSample, cur: FrameSample) -> Slots:
        dt = (cur.timestamp_ns - prev.timestamp_ns) * 1e-9
        motion = relative_motion(
            Transform.from_matrix(prev.model_to_world.numpy()),
            Transform.from_matrix(cur.model_to_world.numpy()),
        )
        boxes = propagate_boxes(slots.box, dt, motion)
        refs = torch.from_numpy(refs_from_boxes(boxes, self.exp.model.pc_range)).float().to(self.device)
        ref = torch.where(slots.mask[:, None], refs, slots.ref)
        return Slots(slots.emb, ref, slots.instance, boxes)

    def _frame(self, s: FrameSample, slots: Slots) -> tuple[dict[str, torch.Tensor], Slots]:
        syncl, aids, cfg = self.exp.train.syncl, self.exp.train.aids, self.exp.model
        images = s.images[None].to(self.device)
        i2l = s.img2lidar[None].to(self.device)
        feats = self.net.encode(images)
        num_match = cfg.num_queries + cfg.dense_queries + cfg.num_slots
        dn = None
        if aids.denoising:
            dn = make_denoising(
                s.boxes,
                s.labels,
                cast(nn.Embedding, self.m.train_only["dn_labels"]),
                self.net.coder,
                num_match,
                aids.denoising_groups,
                aids.denoising_noise,
                self.gen,
            )
        extra = None if dn is None else (dn.content, dn.refs, dn.bias)
        args = (feats, i2l, slots.emb[None], slots.ref[None], slots.mask[None])
        dense = self.net.dense(feats) if cfg.dense_heads else None  # once for both decoders and the loss
        # Losses and matching run in float32 also under bfloat16 autocast.
        s_out = _float32(self.net.decode(*args, self_attention=True, extra=extra, dense=dense))
        c_out = (
            _float32(self.net.decode(*args, self_attention=False, dense=dense))
            if syncl.hybrid_matching
            else None
        )
        gt_code = self.net.coder.encode(s.boxes).to(self.device)
        parts: dict[str, torch.Tensor] = {}
        last_targets = None
        followed = self._followed(slots, s)
        for layer in self._layers():
            targets = self._assign(s_out, c_out, layer, s, followed, gt_code)
            self._add(parts, "s", self._decoder_loss(s_out, layer, targets.s, s, slots, gt_code))
            if c_out is not None and targets.c is not None:
                c_loss = self._decoder_loss(c_out, layer, targets.c, s, slots, gt_code)
                self._add(parts, "c", c_loss * syncl.c_decoder_weight)
            last_targets = targets
        assert last_targets is not None
        if syncl.contrastive and c_out is not None and last_targets.c is not None:
            parts["contrastive"] = syncl.contrastive_weight * self._contrastive(
                c_out, last_targets.c, s, slots
            )
        if dense is not None and aids.dense_weight > 0:
            h, w = feats.shape[-2:]
            t = dense_targets(s.boxes, s.labels, s.lidar2img, h, w, cfg.num_classes)
            parts["dense"] = aids.dense_weight * dense_loss(dense, [t])
        if aids.coaux:
            parts["coaux"] = aids.coaux_weight * self._coaux_loss(feats, s)
        if dn is not None:
            parts["dn"] = self._denoising_loss(s_out, dn)
        return parts, self._next_slots(s_out, last_targets.s, s, slots)

    def _layers(self) -> range:
        n = self.exp.model.num_layers
        return range(n) if self.exp.train.aux_layers else range(n - 1, n)

    @staticmethod
    def _add(parts: dict[str, torch.Tensor], name: str, value: torch.Tensor) -> None:
        parts[name] = parts[name] + value if name in parts else value

    def _followed(self, slots: Slots, s: FrameSample) -> list[int]:
        """Instance id each slot is supervised to follow; -1 for free slots and, past
        ``train.track_gate_m``, for slots whose predicted center has lost their object."""
        ids = [int(i) for i in slots.instance.tolist()]
        gate = self.exp.train.track_gate_m
        if gate <= 0.0:
            return ids
        centers = {int(i): s.boxes[j, :2].numpy() for j, i in enumerate(s.instances.tolist())}
        for k, inst in enumerate(ids):
            if inst in centers and np.linalg.norm(slots.box[k, :2] - centers[inst]) > gate:
                ids[k] = -1
        return ids

    def _assign(
        self,
        s_out: DecoderOutput,
        c_out: DecoderOutput | None,
        layer: int,
        s: FrameSample,
        followed: list[int],
        gt_code: torch.Tensor,
    ) -> HybridTargets:
        nd, syncl = s_out.num_det, self.exp.train.syncl
        return hybrid_assignments(
            s_out.logits[layer, 0, :nd].detach(),
            s_out.codes[layer, 0, :nd].detach(),
            s.labels,
            gt_code,
            s.instances,
            followed,
            None if c_out is None else c_out.logits[layer, 0, :nd].detach(),
            None if c_out is None else c_out.codes[layer, 0, :nd].detach(),
            one_to_many=True,
            k=syncl.k,
            gmm_filter=syncl.gmm_filter,
        )

    def _decoder_loss(
        self,
        out: DecoderOutput,
        layer: int,
        t: DecoderTargets,
        s: FrameSample,
        slots: Slots,
        gt_code: torch.Tensor,
    ) -> torch.Tensor:
        """Focal loss over detection rows and live slot rows + L1 over the matched ones."""
        nd, cfg, train = out.num_det, self.exp.model, self.exp.train
        live = slots.mask.nonzero().flatten()
        rows = torch.cat([torch.arange(nd, device=self.device), nd + live])
        labels = torch.full((nd + len(live),), cfg.num_classes, dtype=torch.long, device=self.device)
        labels[t.det_query_idx] = s.labels.to(self.device)[t.det_gt_idx]
        track_gt = t.track_gt_idx.to(self.device)[live]
        found = track_gt >= 0
        labels[nd:][found] = s.labels.to(self.device)[track_gt[found]]
        pred_rows = torch.cat([t.det_query_idx.to(self.device), nd + live[found]])
        gt_rows = torch.cat([t.det_gt_idx.to(self.device), track_gt[found]])
        cls = sigmoid_focal_loss(out.logits[layer, 0, rows], labels)
        box = box_l1_loss(out.codes[layer, 0, pred_rows], gt_code[gt_rows])
        return train.cls_weight * cls + train.box_weight * box

    def _contrastive(
        self, c_out: DecoderOutput, t: DecoderTargets, s: FrameSample, slots: Slots
    ) -> torch.Tensor:
        nd = c_out.num_det
        instances = s.instances.to(self.device)
        det = self.m.train_only["projector"](c_out.embeddings[0, t.det_query_idx.to(self.device)])
        det_inst = instances[t.det_gt_idx.to(self.device)]
        live = slots.mask.nonzero().flatten()
        track_gt = t.track_gt_idx.to(self.device)[live]
        found = track_gt >= 0
        track = c_out.embeddings[0, nd + live[found]]
        return kernel_contrastive_loss(
            det, det_inst, track, instances[track_gt[found]], self.exp.train.syncl.temperature
        )

    def _coaux_loss(self, feats: torch.Tensor, s: FrameSample) -> torch.Tensor:
        h, w = feats.shape[-2:]
        cls, reg = (x.float() for x in self.m.train_only["aux_box_head"](feats))
        targets = aux_targets(s.boxes, s.labels, s.lidar2img, h, w, self.exp.model.num_classes)
        return aux_loss(cls, reg, [targets], self.exp.train.cls_weight, self.exp.train.box_weight)

    def _denoising_loss(self, out: DecoderOutput, dn: DenoisingQueries) -> torch.Tensor:
        start = out.logits.shape[2] - len(dn.labels)
        total = torch.zeros((), device=self.device)
        for layer in self._layers():
            cls = sigmoid_focal_loss(out.logits[layer, 0, start:], dn.labels.to(self.device))
            box = box_l1_loss(out.codes[layer, 0, start:], dn.codes.to(self.device))
            total = total + self.exp.train.cls_weight * cls + self.exp.train.box_weight * box
        return total

    def _next_slots(self, out: DecoderOutput, t: DecoderTargets, s: FrameSample, slots: Slots) -> Slots:
        """Keep tracks whose object is still there; matched new-born detections become tracks."""
        nd, num = out.num_det, self.exp.model.num_slots
        emb, ref = out.embeddings[0], out.refs[-1, 0].detach()
        boxes = self.net.coder.to_boxes(out.codes[-1, 0].detach()).cpu().numpy()
        instances = s.instances.to(self.device)
        track_gt = t.track_gt_idx.to(self.device)
        keep = slots.mask & (track_gt >= 0)
        drop = torch.rand(num, generator=self.gen) < self.exp.train.track_drop
        keep &= ~drop.to(self.device)
        new = Slots.empty(num, emb.shape[-1], self.device)
        kept_slots = keep.nonzero().flatten().tolist()
        births = list(zip(t.det_query_idx.tolist(), t.det_gt_idx.tolist(), strict=True))
        sources = [(nd + i, int(slots.instance[i])) for i in kept_slots]
        sources += [(q, int(instances[g])) for q, g in births]
        sources = sources[:num]
        if sources:
            rows = torch.tensor([r for r, _ in sources], device=self.device)
            n = len(sources)
            new.emb = torch.cat([emb[rows], new.emb[n:]])
            new.ref = torch.cat([ref[rows], new.ref[n:]])
            new.instance = torch.cat(
                [torch.tensor([i for _, i in sources], device=self.device), new.instance[n:]]
            )
            new.box[:n] = boxes[rows.cpu().numpy()]
        return new
