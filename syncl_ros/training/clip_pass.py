"""Training's forward pass: one clip through the tracker under the runtime tracker's rules, and its losses.

Frame by frame, as at inference, the network sees the six images (or their
cached encoder features) plus the track slots carried from the previous frame.
The query tracker itself (:class:`QueryTracker`) keeps the books: births
(score at or above ``birth_score``, no duplicate of a live track, a free slot),
motion (measured velocity and ego motion), confirmation, coasting and death.
Training mirrors its decisions on torch tensors, so that the carried
embeddings keep their gradients across the clip, and adds what only training
knows: the object each slot follows.

Per frame and decoder layer:
- S-decoder (the inference decoder): detection queries are matched one-to-one
  to new-born objects (those no slot follows); each slot is taught its object
  while the object is there and "no object" while it is not (coasting) or when
  it never had one (a false track);
- SynCL (`syncl_ros.training.syncl`):
  - C-decoder (same weights, self-attention skipped; `syncl.hybrid_matching`):
    slots by object, detection queries one-to-many (at most k) to persistent
    objects, thinned by the GMM query filter (`syncl.gmm_filter`); it has no loss
    on a frame without persistent objects;
  - instance-aware contrastive loss between the C-decoder's matched detection
    embeddings (through train-only projection layers) and the slot embeddings of
    the same objects (`syncl.contrastive`);
- augmentation (`train.aug`, off by default): the whole clip's scene flipped, turned
  and scaled in the model frame (`syncl_ros.training.bev_aug`), each camera's image
  zoomed, shifted and mirrored with its geometry (`syncl_ros.training.image_aug`);
- convergence aids: dense heatmap/depth losses, the lidar-supervised
  per-pixel depth distribution, Co-DETR-style one-to-many dense box
  supervision, query denoising.
Added for training only, as MUTR3D does: false-positive tracks
(``train.fp_ratio``) and random track drops (``train.track_drop``), so that
track queries learn both to keep and to let go. A slot whose decoded center
is farther than ``train.track_gate_m`` from its object has lost it for good.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from syncl_ros.experiment import Experiment
from syncl_ros.geometry import Transform
from syncl_ros.inference.torch_backend import to_decoder_outputs
from syncl_ros.model.network import DecoderTensors, DenseOutput, TrackerNet
from syncl_ros.tracking.interface import DecoderOutputs, TrackSlots
from syncl_ros.tracking.query_tracker import QueryTracker
from syncl_ros.training.bev_aug import augment_clip, draw
from syncl_ros.training.coaux import AuxBoxHead, aux_loss, aux_targets
from syncl_ros.training.data import FrameSample
from syncl_ros.training.denoising import DenoisingQueries, make_denoising
from syncl_ros.training.dense import dense_loss, dense_targets
from syncl_ros.training.depth_loss import depth_distribution_loss, depth_errors
from syncl_ros.training.image_aug import augment_images, draw_images
from syncl_ros.training.losses import box_l1_loss, sigmoid_focal_loss
from syncl_ros.training.syncl.c_decoder import c_decode
from syncl_ros.training.syncl.contrastive import ContrastiveProjector, kernel_contrastive_loss
from syncl_ros.training.syncl.matching import (
    DecoderTargets,
    HybridTargets,
    assign_births,
    hybrid_assignments,
)

# Counts reported next to the losses (logged, never summed into the loss).
COUNTS = ("tracks", "births", "lost")
# Measurements logged next to the losses when their aid is on (never summed into the loss).
METRICS = ("depth_err_m",)  # mean absolute error of the per-cell expected depth at the lidar's cells


def _each(out: DecoderTensors, fn: Callable[[torch.Tensor], torch.Tensor]) -> DecoderTensors:
    """The output with `fn` applied to each of its tensors."""
    per_layer = tuple(fn(t) for t in out.layer_embeddings)
    return replace(
        out,
        logits=fn(out.logits),
        codes=fn(out.codes),
        refs=fn(out.refs),
        embeddings=fn(out.embeddings),
        layer_embeddings=per_layer,
    )


def _float32(out: DecoderTensors) -> DecoderTensors:
    return _each(out, lambda t: t.float())


def _detached(out: DecoderTensors) -> DecoderTensors:
    return _each(out, lambda t: t.detach())


class TrainingModel(nn.Module):
    """The tracker network plus the layers that exist only during training; its forward pass
    returns one clip's losses.

    Checkpoints hold `net`'s weights as the model and `train_only`'s beside them, so the
    names inside both are checkpoint keys.
    """

    def __init__(self, experiment: Experiment) -> None:
        super().__init__()
        self.experiment = experiment
        cfg = experiment.model
        if experiment.train.aids.depth_weight > 0 and not cfg.depth_distribution:
            raise ValueError("train.aids.depth_weight supervises model.depth_distribution: turn it on")
        if experiment.train.aug.image and experiment.train.freeze_encoder:
            raise ValueError("train.aug.image_* warps images; freeze_encoder trains on cached features")
        self.net = TrackerNet(cfg)
        self.train_only = nn.ModuleDict(
            {
                "projector": ContrastiveProjector(cfg.embed_dim),
                "dn_labels": nn.Embedding(cfg.num_classes, cfg.embed_dim),
                "aux_box_head": AuxBoxHead(cfg.embed_dim, cfg.num_classes),
            }
        )

    def forward(self, clip: list[FrameSample], generator: torch.Generator) -> dict[str, torch.Tensor]:
        return ClipPass(self, generator).run(clip)


@dataclass
class SlotMemory:
    """What training keeps per slot beside the runtime tracker's books."""

    emb: torch.Tensor  # (S, C) carried query embeddings, with their gradients
    follow: NDArray[
        np.int64
    ]  # (S,) instance id each slot is taught to follow; -1: none (free, false or lost)

    @staticmethod
    def empty(num: int, dim: int, device: torch.device) -> SlotMemory:
        return SlotMemory(torch.zeros(num, dim, device=device), np.full(num, -1, dtype=np.int64))


@dataclass(frozen=True)
class FrameRecord:
    """What happened to the slots in one training frame (for tests and logs)."""

    live: NDArray[np.bool_]  # (S,) slots given to the decoder
    follow: NDArray[np.int64]  # (S,) instance each slot was taught this frame (-1: "no object")
    refs: NDArray[np.float32]  # (S, 3) reference points given to the decoder
    births: int  # tracks started by the runtime rule
    false_tracks: int  # tracks started from unmatched detections (train.fp_ratio)
    lost: int  # slots that lost their object this frame (train.track_gate_m)


class ClipPass:
    """One clip through the network, frame by frame, with the runtime tracker deciding the slots.

    `run` returns each term's mean over the frames (losses, `COUNTS`, `METRICS`) and "loss",
    the sum of the losses.
    """

    def __init__(self, module: TrainingModel, generator: torch.Generator) -> None:
        self.m = module
        self.net: TrackerNet = module.net
        self.exp = module.experiment
        self.gen = generator
        self.device = next(module.parameters()).device
        self.tracker = QueryTracker(self.exp.tracker, self.exp.model, seed=0)
        self.records: list[FrameRecord] = []

    def run(self, clip: list[FrameSample]) -> dict[str, torch.Tensor]:
        cfg, aug = self.exp.model, self.exp.train.aug
        # drawn from the run's generator, once per clip: a resumed run draws the same
        if aug.bev:
            clip = augment_clip(clip, draw(aug, self.gen), cfg.pc_range)
        if aug.image:
            cameras = draw_images(aug, clip[0].lidar2img.shape[0], self.gen)
            clip = [augment_images(s, cameras) for s in clip]
        memory = SlotMemory.empty(cfg.num_slots, cfg.embed_dim, self.device)
        totals: dict[str, torch.Tensor] = {}
        for sample in clip:
            pose = Transform.from_matrix(sample.model_to_world.numpy())
            slots = self.tracker.prepare(sample.timestamp_ns, pose)
            parts, memory = self._frame(sample, slots, memory)
            for name, value in parts.items():
                share = value / len(clip)
                totals[name] = totals[name] + share if name in totals else share
        losses = [v for k, v in totals.items() if k not in COUNTS and k not in METRICS]
        totals["loss"] = torch.stack(losses).sum()
        return totals

    # -- per frame ------------------------------------------------------------------

    def _features(self, s: FrameSample) -> tuple[torch.Tensor, DenseOutput | None]:
        """Encoder features (cached or computed) and the dense heads' output on them."""
        frozen = self.exp.train.freeze_encoder
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            if s.features is not None:
                feats = s.features[None].to(self.device, torch.float32)
            else:
                assert s.images is not None, "a sample needs images or cached features"
                feats = self.net.encode(s.images[None].to(self.device))
            dense = self.net.dense(feats) if self.exp.model.dense_heads else None
        return feats, dense

    def _frame(
        self, s: FrameSample, slots: TrackSlots, memory: SlotMemory
    ) -> tuple[dict[str, torch.Tensor], SlotMemory]:
        syncl, aids, cfg = self.exp.train.syncl, self.exp.train.aids, self.exp.model
        i2l = s.img2lidar[None].to(self.device)
        feats, dense = self._features(s)
        dn = self._denoising(s) if aids.denoising else None
        extra = None if dn is None else (dn.content, dn.refs, dn.bias)
        ref = torch.from_numpy(slots.refs)[None].to(self.device)
        mask = torch.from_numpy(slots.mask)[None].to(self.device)
        args = (feats, i2l, memory.emb[None], ref, mask)
        # Losses and matching run in float32 also under bfloat16 autocast.
        s_out = _float32(self.net.decode(*args, self_attention=True, extra=extra, dense=dense))
        c_out = _float32(c_decode(self.net, *args, dense=dense)) if syncl.hybrid_matching else None
        gt_code = self.net.coder.encode(s.boxes).to(self.device)
        tracked = self._exit_view(s_out)  # what the runtime tracker reads (losses see every layer)
        follow, lost = self._follow(tracked, s, slots.mask, memory.follow)
        kept = self._kept_by_withheld(memory.follow, follow)  # follow: decoded slots only
        parts: dict[str, torch.Tensor] = {}
        last_targets = None
        for layer in self._layers():
            targets = self._assign(s_out, c_out, layer, s, follow, gt_code)
            self._add(parts, "s", self._decoder_loss(s_out, layer, targets.s, s, slots.mask, gt_code))
            # The C-decoder has nothing to match on a frame without persistent objects.
            if c_out is not None and targets.c is not None and targets.c.det_query_idx.numel():
                c_loss = self._decoder_loss(c_out, layer, targets.c, s, slots.mask, gt_code)
                self._add(parts, "c", c_loss * syncl.c_decoder_weight)
            last_targets = targets
        assert last_targets is not None
        if syncl.contrastive and c_out is not None and last_targets.c is not None:
            parts["contrastive"] = syncl.contrastive_weight * self._contrastive(
                c_out, last_targets.c, s, slots.mask
            )
        if dense is not None and aids.dense_weight > 0 and not self.exp.train.freeze_encoder:
            h, w = feats.shape[-2:]
            t = dense_targets(s.boxes, s.labels, s.lidar2img, h, w, cfg.num_classes)
            parts["dense"] = aids.dense_weight * dense_loss(dense, [t])
        if dense is not None and aids.depth_weight > 0 and not self.exp.train.freeze_encoder:
            parts.update(self._depth_loss(dense, s))
        if aids.coaux and not self.exp.train.freeze_encoder:
            parts["coaux"] = aids.coaux_weight * self._coaux_loss(self.net.image_features(feats), s)
        if dn is not None:
            parts["dn"] = self._denoising_loss(s_out, dn)
        memory, record = self._update_tracks(tracked, last_targets.s, s, slots, replace(memory, follow=kept))
        self.records.append(replace(record, lost=lost))
        parts.update(
            tracks=torch.tensor(float(record.live.sum())),
            births=torch.tensor(float(record.births)),
            lost=torch.tensor(float(lost)),
        )
        return parts, memory

    def _depth_loss(self, dense: DenseOutput, s: FrameSample) -> dict[str, torch.Tensor]:
        """Cross-entropy of the per-cell depth bins against the lidar, and the mean depth error."""
        if s.depth is None or dense.depth_logits is None:
            raise ValueError("train.aids.depth_weight needs samples with lidar depth targets")
        cfg, target = self.exp.model, s.depth[None].to(self.device)
        bins = cast(torch.Tensor, self.net.bin_depths)
        loss = depth_distribution_loss(dense.depth_logits, target, bins, cfg.depth_range[1])
        with torch.no_grad():
            err = depth_errors(self.net.pixel_depth(dense).float(), target)
        mean_err = err.mean() if err.numel() else torch.zeros((), device=self.device)
        return {"depth": self.exp.train.aids.depth_weight * loss, "depth_err_m": mean_err.cpu()}

    def _denoising(self, s: FrameSample) -> DenoisingQueries | None:
        cfg, aids = self.exp.model, self.exp.train.aids
        return make_denoising(
            s.boxes,
            s.labels,
            cast(nn.Embedding, self.m.train_only["dn_labels"]),
            self.net.coder,
            cfg.num_queries + cfg.dense_queries + cfg.num_slots,
            aids.denoising_groups,
            aids.denoising_noise,
            self.gen,
        )

    def _exit_view(self, out: DecoderTensors) -> DecoderTensors:
        """The outputs the runtime tracker takes on this frame: the last layer's, or with
        probability ``train.random_exit`` a shallower layer's that early exit may stop after."""
        share, n = self.exp.train.random_exit, self.exp.model.num_layers
        first = self.exp.tracker.early_exit.min_layers - 1  # the first layer a frame may stop after
        if share <= 0.0 or first >= n - 1:  # draws nothing: other runs keep their random streams
            return out
        if float(torch.rand((), generator=self.gen)) >= share:
            return out
        return out.exit_after(first + int(torch.randint(n - 1 - first, (), generator=self.gen)))

    def _layers(self) -> range:
        n = self.exp.model.num_layers
        return range(n) if self.exp.train.aux_layers else range(n - 1, n)

    @staticmethod
    def _add(parts: dict[str, torch.Tensor], name: str, value: torch.Tensor) -> None:
        parts[name] = parts[name] + value if name in parts else value

    def _follow(
        self, out: DecoderTensors, s: FrameSample, live: NDArray[np.bool_], follow: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], int]:
        """Instance each slot follows from this frame on, and how many lost theirs here.

        A live slot whose decoded center (last layer) is farther than ``train.track_gate_m``
        from its object has lost it: from now on it is a false track, taught "no object"
        until the runtime rule ends it, and the object is new-born again for the detection
        queries. The gate judges what the decoder outputs, not the predicted position.
        """
        follow = np.where(live, follow, -1)
        gate = self.exp.train.track_gate_m
        if gate <= 0.0:
            return follow, 0
        centers = {int(i): s.boxes[j, :2].numpy() for j, i in enumerate(s.instances.tolist())}
        nd = out.num_det
        decoded = out.codes[-1, 0, nd : nd + len(follow), :2].detach().cpu().numpy()
        lost = 0
        for k in np.flatnonzero(follow >= 0):
            target = centers.get(int(follow[k]))
            if target is not None and np.linalg.norm(decoded[k] - target) > gate:
                follow[k] = -1
                lost += 1
        return follow, lost

    def _kept_by_withheld(self, carried: NDArray[np.int64], follow: NDArray[np.int64]) -> NDArray[np.int64]:
        """``follow`` plus the objects of the live tracks the runtime kept out of the decoder
        (``tracker.decode_coasting`` false). Such a track is not decoded, so its object counts as
        new-born for the detection queries this frame (``follow`` leaves it out): its detection
        row is taught to fire, which is what the track needs to reattach."""
        return np.where(self.tracker.withheld, carried, follow)

    def _assign(
        self,
        s_out: DecoderTensors,
        c_out: DecoderTensors | None,
        layer: int,
        s: FrameSample,
        follow: NDArray[np.int64],
        gt_code: torch.Tensor,
    ) -> HybridTargets:
        nd, syncl = s_out.num_det, self.exp.train.syncl
        return hybrid_assignments(
            s_out.logits[layer, 0, :nd].detach(),
            s_out.codes[layer, 0, :nd].detach(),
            s.labels,
            gt_code,
            s.instances,
            torch.from_numpy(follow),
            None if c_out is None else c_out.logits[layer, 0, :nd].detach(),
            None if c_out is None else c_out.codes[layer, 0, :nd].detach(),
            one_to_many=True,
            k=syncl.k,
            gmm_filter=syncl.gmm_filter,
        )

    def _decoder_loss(
        self,
        out: DecoderTensors,
        layer: int,
        t: DecoderTargets,
        s: FrameSample,
        live_mask: NDArray[np.bool_],
        gt_code: torch.Tensor,
    ) -> torch.Tensor:
        """Focal loss over detection rows (bar the ignored ones) and live slot rows + L1 over the matched."""
        nd, cfg, train = out.num_det, self.exp.model, self.exp.train
        live = torch.from_numpy(np.flatnonzero(live_mask)).to(self.device)
        det_rows = torch.ones(nd, dtype=torch.bool, device=self.device)
        det_rows[t.ignore_query_idx.to(self.device)] = False
        labels = torch.full((nd + len(live),), cfg.num_classes, dtype=torch.long, device=self.device)
        labels[t.det_query_idx] = s.labels.to(self.device)[t.det_gt_idx]
        track_gt = t.track_gt_idx.to(self.device)[live]
        found = track_gt >= 0
        labels[nd:][found] = s.labels.to(self.device)[track_gt[found]]
        keep = torch.cat([det_rows, torch.ones(len(live), dtype=torch.bool, device=self.device)])
        rows = torch.cat([torch.arange(nd, device=self.device), nd + live])[keep]
        pred_rows = torch.cat([t.det_query_idx.to(self.device), nd + live[found]])
        gt_rows = torch.cat([t.det_gt_idx.to(self.device), track_gt[found]])
        cls = sigmoid_focal_loss(out.logits[layer, 0, rows], labels[keep])
        box = box_l1_loss(out.codes[layer, 0, pred_rows], gt_code[gt_rows])
        return train.cls_weight * cls + train.box_weight * box

    def _contrastive(
        self, c_out: DecoderTensors, t: DecoderTargets, s: FrameSample, live_mask: NDArray[np.bool_]
    ) -> torch.Tensor:
        nd = c_out.num_det
        instances = s.instances.to(self.device)
        det = self.m.train_only["projector"](c_out.embeddings[0, t.det_query_idx.to(self.device)])
        det_inst = instances[t.det_gt_idx.to(self.device)]
        live = torch.from_numpy(np.flatnonzero(live_mask)).to(self.device)
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

    def _denoising_loss(self, out: DecoderTensors, dn: DenoisingQueries) -> torch.Tensor:
        start = out.logits.shape[2] - len(dn.labels)
        total = torch.zeros((), device=self.device)
        for layer in self._layers():
            cls = sigmoid_focal_loss(out.logits[layer, 0, start:], dn.labels.to(self.device))
            box = box_l1_loss(out.codes[layer, 0, start:], dn.codes.to(self.device))
            total = total + self.exp.train.cls_weight * cls + self.exp.train.box_weight * box
        return total

    # -- the runtime's decisions, mirrored ---------------------------------------------

    def _update_tracks(
        self, out: DecoderTensors, t: DecoderTargets, s: FrameSample, slots: TrackSlots, memory: SlotMemory
    ) -> tuple[SlotMemory, FrameRecord]:
        """Run the runtime tracker's update on this frame's outputs and mirror it on the memory."""
        outputs = to_decoder_outputs(_detached(out), self.net)
        self.tracker.update(outputs)
        changes = self.tracker.last_changes
        matched = set(t.det_query_idx.tolist())
        emb, follow = memory.emb.clone(), memory.follow.copy()
        rows = out.embeddings[0]
        nd = out.num_det

        def index(a: ArrayLike) -> torch.Tensor:
            return torch.from_numpy(np.array(a, dtype=np.int64)).to(self.device)

        emb[index(changes.refreshed)] = rows[nd + index(changes.refreshed)]
        emb[index(changes.ended)] = 0.0
        follow[changes.ended] = -1
        # A reattached track goes on following its object, from the detection's features.
        emb[index(changes.reattached_slots)] = rows[index(changes.reattached_rows)]
        emb[index(changes.birth_slots)] = rows[index(changes.birth_rows)]
        # The object of a withheld track that reattached nothing may be born again.
        waiting = self.tracker.withheld  # a copy: this frame's, until the next prepare()
        waiting[changes.reattached_slots] = False
        waiting[changes.ended] = False
        owned = np.where(waiting, -1, follow)
        born = self._birth_identities(out, changes.birth_rows, s, owned)
        follow[changes.birth_slots] = born
        # A withheld track whose object a new track took has lost it.
        follow[waiting & np.isin(follow, born[born >= 0])] = -1
        rows_fp, slots_fp = self._false_tracks(outputs, matched, len(changes.birth_rows))
        emb[index(slots_fp)] = rows[index(rows_fp)]
        follow[slots_fp] = -1
        dropped = self._drop_tracks()
        emb[index(dropped)] = 0.0
        follow[dropped] = -1
        record = FrameRecord(
            live=slots.mask.copy(),
            follow=np.where(slots.mask, memory.follow, -1),
            refs=slots.refs.copy(),
            births=len(changes.birth_rows),
            false_tracks=len(slots_fp),
            lost=0,
        )
        return SlotMemory(emb, follow), record

    def _birth_identities(
        self, out: DecoderTensors, birth_rows: NDArray[np.int64], s: FrameSample, follow: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """Instance followed by each new track (-1: a false track); see `assign_births`."""
        rows = torch.from_numpy(np.array(birth_rows, dtype=np.int64)).to(self.device)
        newborn = ~torch.isin(s.instances, torch.from_numpy(follow[follow >= 0]))
        gt = assign_births(
            out.logits[-1, 0, rows].detach(),
            out.codes[-1, 0, rows].detach(),
            s.labels,
            self.net.coder.encode(s.boxes),
            newborn,
            self.exp.train.track_gate_m,
        )
        instances = s.instances.numpy()
        return np.where(gt.numpy() >= 0, instances[gt.clamp(min=0).numpy()], -1) if len(gt) else gt.numpy()

    def _false_tracks(
        self, outputs: DecoderOutputs, matched: set[int], births: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """MUTR3D's false-positive tracks: the best-scored unmatched detections, about
        ``fp_ratio`` per birth, start tracks that are taught "no object"."""
        ratio = self.exp.train.fp_ratio
        if ratio <= 0.0 or births == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        u = float(torch.rand((), generator=self.gen))
        count = int(ratio * births + u)  # rounds up with probability equal to the fraction
        nd = outputs.num_detections(self.exp.model.num_slots)
        score = outputs.scores[:nd].max(axis=1)
        changes = self.tracker.last_changes
        taken = set(matched) | set(changes.birth_rows.tolist()) | set(changes.reattached_rows.tolist())
        order = [int(r) for r in np.argsort(-score, kind="stable") if int(r) not in taken][:count]
        rows = np.asarray(order, dtype=np.int64)
        slots = self.tracker.adopt(outputs, rows)
        return rows[: len(slots)], slots

    def _drop_tracks(self) -> NDArray[np.int64]:
        """Random track drops (``train.track_drop``): their objects are new-born again."""
        live = np.asarray(self.tracker.live_slots, dtype=np.int64)
        if self.exp.train.track_drop <= 0.0 or len(live) == 0:
            return np.empty(0, dtype=np.int64)
        drop = (torch.rand(len(live), generator=self.gen) < self.exp.train.track_drop).numpy()
        dropped: NDArray[np.int64] = live[drop]
        self.tracker.end(dropped)
        return dropped
