"""Typed model configuration (the `model:` section of config/<name>.yaml)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

_POS = {"gt": 0}


@dataclass(frozen=True)
class InputConfig:
    """How a full camera image becomes the network input: resize, then crop (PETR-style)."""

    height: int = field(default=128, metadata=_POS)  # network input rows
    width: int = field(default=352, metadata=_POS)  # network input columns
    # Source images are resized to width `width` keeping their aspect; rows
    # above the bottom `height` rows (mostly sky) are cropped away.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    backbone: Literal["small", "resnet50"] = "small"
    embed_dim: int = field(default=128, metadata=_POS)
    num_heads: int = field(default=4, metadata=_POS)
    ffn_dim: int = field(default=256, metadata=_POS)
    num_layers: int = field(default=6, metadata={"min": 1, "max": 12})
    num_queries: int = field(default=300, metadata=_POS)  # detection queries (learned anchors)
    num_slots: int = field(default=64, metadata=_POS)  # track slots (static shapes for export)
    num_classes: int = field(default=10, metadata=_POS)
    depth_bins: int = field(default=32, metadata=_POS)  # PETR frustum depth bins
    depth_range: tuple[float, float] = (1.0, 60.0)  # metres, linear-increasing spacing
    pc_range: tuple[float, float, float, float, float, float] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.9})
    # Convergence aids (train-time heads; queries from dense predictions also run at inference).
    dense_heads: bool = True  # per-camera center heatmap + depth heads on the image features
    # Per-pixel categorical depth over the `depth_bins` LID bins on the image features (BEVDepth's
    # depth net, supervised by the lidar with train.aids.depth_weight); needs dense_heads.
    depth_distribution: bool = False
    # 3D position embedding of the image tokens: "frustum" lifts every cell to all depth bins
    # (PETR); "depth" places one point per cell at its predicted depth (3DPPE) -- the expected
    # depth of the distribution when `depth_distribution` is on, else the depth head's value.
    position_embedding: Literal["frustum", "depth"] = "frustum"
    # The heatmap seeds' center depth from a head that also reads the backbone's stride-8 level
    # (model/fine_depth.py), computed in the encoder; replaces the stride-16 depth head.
    fine_center_depth: bool = False
    dense_queries: int = field(
        default=0, metadata={"min": 0}
    )  # extra detection queries from the heatmap top-k
    # A live track's reference point moves to the nearest heatmap-seeded query within this many
    # metres (bird's-eye view) before decoding; 0 keeps the propagated point. The decoder refines a
    # reference by well under a metre, so without a seed a track cannot follow what its motion
    # model mispredicts (see docs/training.md, "Why track queries re-anchor").
    track_reanchor_m: float = field(default=0.0, metadata={"min": 0.0})
    # A re-anchored track's query is its seed's detection content plus the update of its memory.
    track_seed_content: bool = False
    # Whether that query adds the memory's update to the seed's content. Off, a track that holds a
    # seed decodes exactly what the detector sees there and its memory serves only the frames it
    # holds none; a switch of the exported graph, not of the weights, so a release may set it
    # (see docs/training.md, "The memory update on a seed").
    track_seed_memory: bool = True
    # A re-anchored track claims its seed: that seed's detection row is hidden from the other
    # queries and cannot give birth, so track and detection never decode the same object twice
    # (the nearest live track wins a seed that several reach; the others coast). With a zero
    # memory update the decoder then sees exactly the detector's queries.
    track_claims_seed: bool = False
    # Self-attention between track and detection rows. "full": every row attends to every row.
    # "asymmetric" (MixFormer's asymmetric mixed attention): track rows attend to track rows only,
    # detection rows to everything, so a track's representation is not disturbed by the frame's
    # new clutter while detections still see (and can defer to) the tracks.
    track_attention: Literal["full", "asymmetric"] = "full"
    # Interval between the frames the model was trained on (nuScenes key frames: 0.5 s); the
    # node processes frames at this interval by default, as track motion is learned at it.
    frame_interval_s: float = field(default=0.5, metadata={"gt": 0})
    input: InputConfig = field(default_factory=InputConfig)

    @property
    def hides_claimed_seeds(self) -> bool:
        """Whether decoding hides the detection rows of seeds that tracks claimed: the claim needs
        heatmap seeds and re-anchoring too."""
        return self.dense_queries > 0 and self.track_reanchor_m > 0.0 and self.track_claims_seed

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        r = self.pc_range
        if not all(math.isfinite(v) for v in r) or not all(r[i] < r[i + 3] for i in range(3)):
            raise ValueError(
                f"pc_range must be 6 finite numbers (x_min, y_min, z_min, x_max, y_max, z_max) with "
                f"min < max, got {r}"
            )
        if not 0 < self.depth_range[0] < self.depth_range[1]:
            raise ValueError(f"depth_range must be increasing and positive, got {self.depth_range}")
        if (self.depth_distribution or self.position_embedding == "depth") and not self.dense_heads:
            raise ValueError("depth_distribution and position_embedding 'depth' need dense_heads")
        if self.fine_center_depth and not self.dense_heads:
            raise ValueError("fine_center_depth needs dense_heads")
