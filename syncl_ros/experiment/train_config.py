"""Typed training settings (the `train:` section of config/<name>.yaml).

Every SynCL part and every convergence aid has its own switch so that its
effect can be measured; `syncl train --set train.syncl.contrastive=false` style
overrides flip them from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_POS = {"gt": 0}
_NONNEG = {"min": 0}


@dataclass(frozen=True)
class SynCLConfig:
    hybrid_matching: bool = True  # C-decoder (no self-attention) + one-to-many detection matching
    k: int = field(default=5, metadata={"min": 1})  # at most k detection queries per persistent object
    gmm_filter: bool = True  # dynamic query filtering of the one-to-many pairs
    contrastive: bool = True  # instance-aware contrastive loss (detection vs track embeddings)
    contrastive_weight: float = field(default=1.0, metadata=_NONNEG)
    temperature: float = field(default=0.1, metadata=_POS)
    c_decoder_weight: float = field(default=1.0, metadata=_NONNEG)  # weight of the C-decoder's losses


@dataclass(frozen=True)
class AidsConfig:
    dense_weight: float = field(default=1.0, metadata=_NONNEG)  # heatmap + depth losses (model.dense_heads)
    # Lidar-supervised per-pixel depth distribution (model.depth_distribution), detection stage only
    # (the tracking stage freezes the encoder): 0 is off and loads no lidar.
    depth_weight: float = field(default=0.0, metadata=_NONNEG)
    # A cell holding lidar points of an annotated object takes their nearest depth, not the
    # nearest of all its points (far away that is the road in front of the object).
    depth_objects_first: bool = False
    coaux: bool = False  # Co-DETR-style one-to-many dense 3D box head on the image features (train only)
    coaux_weight: float = field(default=1.0, metadata=_NONNEG)
    denoising: bool = False  # query denoising: noised ground truth as extra training queries
    denoising_groups: int = field(default=2, metadata={"min": 1})
    denoising_noise: float = field(default=0.4, metadata=_NONNEG)  # box-size-relative center noise


@dataclass(frozen=True)
class AugConfig:
    """Augmentation of each clip, all off by default: the whole scene in BEV
    (training/bev_aug.py) and each camera's image (training/image_aug.py, needs images)."""

    bev_flip: bool = False  # mirror the scene across the x axis, half of the clips
    bev_rotate_deg: float = field(default=0.0, metadata={"min": 0.0, "max": 180.0})  # uniform within ±
    bev_scale: float = field(default=0.0, metadata={"min": 0.0, "max": 0.5})  # uniform within 1 ± this
    image_zoom: float = field(default=0.0, metadata={"min": 0.0, "max": 0.5})  # uniform within 1 ± this
    image_shift: float = field(default=0.0, metadata={"min": 0.0, "max": 0.5})  # of width/height, within ±
    image_flip: bool = False  # mirror a camera's image left-right, half of the clips

    @property
    def bev(self) -> bool:
        return self.bev_flip or self.bev_rotate_deg > 0.0 or self.bev_scale > 0.0

    @property
    def image(self) -> bool:
        return self.image_flip or self.image_zoom > 0.0 or self.image_shift > 0.0


@dataclass(frozen=True)
class TrainConfig:
    clip_length: int = field(default=3, metadata={"min": 1})  # T consecutive key frames per sample
    batch_size: int = field(default=1, metadata={"min": 1})  # clips per step and process
    lr: float = field(default=2e-4, metadata=_POS)
    backbone_lr_scale: float = field(default=1.0, metadata=_POS)
    weight_decay: float = field(default=0.01, metadata=_NONNEG)
    max_steps: int = field(default=20000, metadata={"min": 1})
    warmup_steps: int = field(default=200, metadata=_NONNEG)
    grad_clip: float = field(default=35.0, metadata=_POS)
    # bfloat16 autocast (mixed precision, no loss scaling needed): ~1.6x faster steps on CPUs with
    # AVX512-BF16/AMX and on recent GPUs; weights and optimizer stay float32.
    bf16: bool = False
    cls_weight: float = field(default=2.0, metadata=_NONNEG)  # focal classification (PF-Track)
    box_weight: float = field(default=0.25, metadata=_NONNEG)  # L1 on box codes (PF-Track)
    aux_layers: bool = True  # supervise every decoder layer, not only the last
    track_drop: float = field(
        default=0.1, metadata={"min": 0.0, "max": 1.0}
    )  # drop a track query (robustness)
    # A track slot whose predicted center is farther than this from its object has lost it: it is
    # taught "no object" and the object is new-born again (0: keep it while the object exists).
    track_gate_m: float = field(default=0.0, metadata=_NONNEG)
    # False-positive tracks per runtime birth (MUTR3D's fp_ratio): the best-scored unmatched
    # detections also start tracks, taught "no object", so track queries learn to let go.
    fp_ratio: float = field(default=0.0, metadata=_NONNEG)
    # Share of frames on which the mirrored runtime tracker takes the outputs of a shallower decoder
    # layer (drawn uniformly from those tracker.early_exit may stop after), as DyTrack trains random
    # depths: next frame's track queries then also start from a shallow layer's features.
    random_exit: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})
    # Draw clips class-balanced, as CBGS does (training/class_balance.py): each class present gets
    # the same share of draws, so rare classes (buses, trailers) are seen as often as cars.
    class_balance: bool = False
    checkpoint_every: int = field(default=500, metadata={"min": 1})
    snapshot_every: int = field(default=0, metadata=_NONNEG)  # keep weights-only step_N.pt (0: never)
    log_every: int = field(default=20, metadata={"min": 1})
    # Tracking stage: the image encoder (backbone and the dense heatmap/depth heads) is frozen and
    # its features are read from the on-disk cache (pipeline/feature_cache.py) instead of recomputed.
    freeze_encoder: bool = False
    # Detection training: the backbone's first N stages frozen, weights and BatchNorm statistics
    # (mmdetection's frozen_stages). Their backward pass is skipped: with the `small` backbone at
    # 352x128, 2 stages cut a step's backbone forward and backward by half (docs/training.md).
    frozen_stages: int = field(default=0, metadata=_NONNEG)
    seed: int = 0
    workers: int = field(default=1, metadata=_NONNEG)
    syncl: SynCLConfig = field(default_factory=SynCLConfig)
    aids: AidsConfig = field(default_factory=AidsConfig)
    aug: AugConfig = field(default_factory=AugConfig)
