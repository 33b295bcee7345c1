"""The fine center-depth head: stride-8 folding, a fitted model starting as its source, `syncl fit-depth`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from training_fixtures import TINY_MODEL, tiny_experiment

from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.experiment.checkpoint import load_model, read_checkpoint, save_checkpoint
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.bench import rig_img2lidar
from syncl_ros.pipeline.feature_cache import encoder_digest, weights_digest
from syncl_ros.training import fine_depth_fit
from syncl_ros.training.fine_depth_fit import encode_levels, errors_by_range, fine_model

COARSE = replace(TINY_MODEL, depth_distribution=True, position_embedding="depth")
FINE = replace(COARSE, fine_center_depth=True)


def _coarse_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(
        path, TrackerNet(COARSE).eval(), tiny_experiment(model=COARSE), {"weights": "random"}
    )


def _decode(net: TrackerNet, images: torch.Tensor) -> torch.Tensor:
    cfg = net.cfg
    s = cfg.num_slots
    img2lidar = torch.from_numpy(rig_img2lidar(cfg))[None]
    with torch.no_grad():
        out = net.decode(
            net.encode(images),
            img2lidar,
            torch.zeros(1, s, cfg.embed_dim),
            torch.full((1, s, 3), 0.5),
            torch.zeros(1, s),
        )
    return torch.cat([out.logits[-1], out.codes[-1]], -1)


def test_a_fitted_model_starts_as_the_model_it_came_from(tmp_path: Path) -> None:
    coarse, _, _ = load_model(_coarse_checkpoint(tmp_path / "coarse.pt"))
    fine, exp = fine_model(read_checkpoint(tmp_path / "coarse.pt"))
    fine.eval()
    assert exp.model.fine_center_depth and not hasattr(fine, "depth_head")
    images = torch.randn(1, 6, 3, 64, 160, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        encoded = fine.encode(images)
        assert encoded.shape[2] == fine.feature_channels == COARSE.embed_dim + 1
        torch.testing.assert_close(fine.image_features(encoded), coarse.encode(images))
        torch.testing.assert_close(fine.dense(encoded).depth, coarse.dense(coarse.encode(images)).depth)
    torch.testing.assert_close(_decode(fine, images), _decode(coarse, images))
    with pytest.raises(ValueError, match="encoder output"):  # the features without their depth channel
        fine.dense(fine.image_features(encoded))


def test_a_cell_reads_the_stride8_cells_of_its_neighbourhood_only() -> None:
    torch.manual_seed(0)
    net = TrackerNet(FINE).eval()
    head = net.fine_depth_head
    f16 = torch.randn(1, FINE.embed_dim, 4, 10)
    f8 = torch.randn(1, net.backbone.stride8_channels, 8, 20)
    with torch.no_grad():
        before = head(f16, f8)[0, 0]
        f8[0, :, 5, 9] += 10.0  # a stride-8 cell inside stride-16 cell (2, 4)
        changed = (head(f16, f8)[0, 0] - before).abs() > 1e-6
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert changed[2, 4]
    assert rows.min() >= 1 and rows.max() <= 3 and cols.min() >= 3 and cols.max() <= 5  # the 3x3 conv's reach


def test_the_feature_cache_key_follows_the_fine_head_and_keeps_coarse_keys() -> None:
    torch.manual_seed(0)
    coarse, fine = TrackerNet(COARSE), TrackerNet(FINE)
    assert encoder_digest(coarse) == weights_digest(coarse.backbone)  # caches of coarse models stay valid
    key = encoder_digest(fine)
    with torch.no_grad():
        fine.fine_depth_head.out.weight.add_(1.0)
    assert encoder_digest(fine) != key


def test_fine_center_depth_needs_the_dense_heads() -> None:
    with pytest.raises(ValueError, match="fine_center_depth needs dense_heads"):
        replace(TINY_MODEL, dense_heads=False, dense_queries=0, fine_center_depth=True)


def _args(ckpt: Path, out: Path, root: Path, steps: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fine_depth_fit.configure_parser(parser)
    return parser.parse_args(
        [str(ckpt), str(out), "--dataroot", str(root), "--split", "val", "--every", "1",
         "--steps", str(steps), "--batch", "4", "--lr", "0.002", "--no-progress"]
    )  # fmt: skip


def test_fit_depth_fits_the_centers_and_writes_a_loadable_model(synth_val_root: Path, tmp_path: Path) -> None:
    ckpt = _coarse_checkpoint(tmp_path / "coarse.pt")
    out = tmp_path / "fine.pt"
    assert fine_depth_fit.main(_args(ckpt, out, synth_val_root, steps=300)) == 0
    start, _ = fine_model(read_checkpoint(ckpt))
    fitted, exp, meta = load_model(out)
    assert exp.model.fine_center_depth
    assert meta["fine_depth_fit"]["steps"] == 300 and meta["weights"] == "random"
    levels = encode_levels(fitted, NuScenesFrames(synth_val_root, "v1.0-trainval", split="val"), 1, False)
    before, after = errors_by_range(start, levels), errors_by_range(fitted, levels)
    counted = [(b, a) for b, a in zip(before, after, strict=True) if b[0] > 0]
    assert counted and all(b[0] == a[0] for b, a in counted)
    assert sum(a[1] for _, a in counted) < 0.5 * sum(b[1] for b, _ in counted)  # fits the training centers
    torch.testing.assert_close(  # only the fine head moved
        fitted.backbone.state_dict(), start.backbone.state_dict()
    )


def test_a_fit_shorter_than_one_logging_stretch_still_reports_its_loss(
    synth_val_root: Path, tmp_path: Path
) -> None:
    ckpt = _coarse_checkpoint(tmp_path / "coarse.pt")
    assert fine_depth_fit.main(_args(ckpt, tmp_path / "fine.pt", synth_val_root, steps=3)) == 0
    first, last = load_model(tmp_path / "fine.pt")[2]["fine_depth_fit"]["loss_first_last"]
    assert first == last > 0.0  # one stretch of 3 steps


def test_fit_depth_refuses_a_model_without_dense_heads(
    synth_val_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = replace(TINY_MODEL, dense_heads=False, dense_queries=0)
    ckpt = save_checkpoint(tmp_path / "plain.pt", TrackerNet(model), tiny_experiment(model=model), {})
    assert fine_depth_fit.main(_args(ckpt, tmp_path / "out.pt", synth_val_root, steps=1)) == 2
    assert "no dense heads" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()
