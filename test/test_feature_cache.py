"""The on-disk cache of encoder features: faithful to a fresh encode (up to float16 rounding), keyed
by weights, input and data, resumable, and the frozen-encoder training stage that reads it."""

import argparse
import copy
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from training_fixtures import TINY_MODEL, tiny_experiment

from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.dataset_inputs import frame_images
from syncl_ros.pipeline.feature_cache import MANIFEST, FeatureCache
from syncl_ros.training import cli
from syncl_ros.training.data import ClipDataset
from syncl_ros.training.trainer import RunSpec, Trainer

VERSION, SPLIT = "v1.0-trainval", "val"


@pytest.fixture(scope="module")
def frames(synth_val_root: Path) -> NuScenesFrames:
    return NuScenesFrames(synth_val_root, VERSION, split=SPLIT)


@pytest.fixture(scope="module")
def net() -> TrackerNet:
    torch.manual_seed(0)
    return TrackerNet(TINY_MODEL)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, net: TrackerNet, frames: NuScenesFrames) -> FeatureCache:
    cache = FeatureCache(tmp_path_factory.mktemp("features"), net, frames, TINY_MODEL)
    cache.build(progress=False)
    return cache


def count_encodes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"n": 0}
    real: Callable[..., torch.Tensor] = TrackerNet.encode

    def counted(self: TrackerNet, images: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return real(self, images)

    monkeypatch.setattr(TrackerNet, "encode", counted)
    return calls


def mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_cached_features_equal_a_fresh_encode_up_to_float16_rounding(
    built: FeatureCache, net: TrackerNet, frames: NuScenesFrames
) -> None:
    net.eval()
    worst = 0.0
    for i in range(len(frames)):
        with torch.no_grad():
            fresh = net.encode(frame_images(frames[i], TINY_MODEL)[None])[0]
        cached = built.features(i)
        assert cached.dtype == torch.float16 and cached.shape == fresh.shape == (6, 32, 4, 10)
        err = (cached.float() - fresh).abs()
        # Round to nearest float16: half a unit in the last place (2^-11 relative), 2^-25 below normals.
        assert bool((err <= fresh.abs() * 2**-11 + 2**-25).all()), i
        worst = max(worst, float(err.max()))
    assert worst < 1e-4  # measured 6.1e-5 (features up to 0.22 in magnitude)


def test_manifest_and_layout(built: FeatureCache, frames: NuScenesFrames) -> None:
    import json

    manifest = json.loads((built.directory / MANIFEST).read_text())
    assert manifest["key"] == built.key == built.directory.name and manifest["dtype"] == "float16"
    assert set(manifest["parts"]) == {"format", "weights", "input", "data"}
    tokens = frames.sample_tokens()
    for scene, rows in frames.scene_slices.items():
        assert manifest["scenes"][scene]["shape"] == [len(rows), 6, 32, 4, 10]
        assert manifest["scenes"][scene]["tokens"] == [tokens[i] for i in rows]


def test_a_second_build_reuses_every_file(
    built: FeatureCache, net: TrackerNet, frames: NuScenesFrames, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = mtimes(built.directory)
    calls = count_encodes(monkeypatch)
    again = FeatureCache(built.root, net, frames, TINY_MODEL)
    assert again.directory == built.directory and again.missing_scenes() == []
    again.build(progress=False)
    assert calls["n"] == 0 and mtimes(built.directory) == before


def test_the_key_follows_the_encoder_weights_only(
    built: FeatureCache, net: TrackerNet, frames: NuScenesFrames
) -> None:
    changed = copy.deepcopy(net)
    with torch.no_grad():
        next(changed.backbone.parameters()).view(-1)[0] += 1e-3
    assert FeatureCache(built.root, changed, frames, TINY_MODEL).directory != built.directory
    decoder_only = copy.deepcopy(net)
    with torch.no_grad():
        decoder_only.anchors.weight.add_(0.1)  # not part of the encoder: same features, same key
    assert FeatureCache(built.root, decoder_only, frames, TINY_MODEL).key == built.key


def test_the_key_follows_the_input_config(
    built: FeatureCache, net: TrackerNet, frames: NuScenesFrames
) -> None:
    other = replace(TINY_MODEL, input=replace(TINY_MODEL.input, width=192))
    assert FeatureCache(built.root, net, frames, other).key != built.key


def test_touching_an_image_changes_the_key(
    built: FeatureCache, net: TrackerNet, frames: NuScenesFrames
) -> None:
    image = frames[3].cameras[2].path
    st = image.stat()
    try:
        os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert FeatureCache(built.root, net, frames, TINY_MODEL).key != built.key
    finally:
        os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))  # the dataset is shared by other tests
    assert FeatureCache(built.root, net, frames, TINY_MODEL).key == built.key


def test_an_interrupted_build_encodes_only_the_missing_scene(
    built: FeatureCache, net: TrackerNet, frames: NuScenesFrames, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost, kept = frames.scene_names
    first = built.features(frames.scene_slices[lost][0])
    kept_mtime = built.scene_path(kept).stat().st_mtime_ns
    built.scene_path(lost).unlink()
    assert built.missing_scenes() == [lost]
    calls = count_encodes(monkeypatch)
    built.build(progress=False)
    assert calls["n"] == len(frames.scene_slices[lost])
    assert built.scene_path(kept).stat().st_mtime_ns == kept_mtime
    assert torch.equal(built.features(frames.scene_slices[lost][0]), first)
    assert not list(built.directory.glob("*.partial"))


def test_cached_samples_carry_features_and_the_same_geometry(
    built: FeatureCache, frames: NuScenesFrames
) -> None:
    plain = ClipDataset(frames, TINY_MODEL, 2)[0]
    cached = ClipDataset(frames, TINY_MODEL, 2, cache=built)[0]
    for a, b, index in zip(plain, cached, frames.clips(2)[0], strict=True):
        assert a.features is None and a.images is not None
        assert b.images is None and b.features is not None
        assert torch.equal(b.features, built.features(index))
        assert torch.equal(a.lidar2img, b.lidar2img) and torch.equal(a.img2lidar, b.img2lidar)
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.instances, b.instances)


def test_feature_cache_option_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)
    base = ["--dataroot", "d", "--out", "o"]
    assert parser.parse_args([*base, "--feature-cache", "/x/f"]).feature_cache == Path("/x/f")
    assert parser.parse_args(base).feature_cache is None
    monkeypatch.setenv("SYNCL_CACHE_DIR", str(tmp_path))
    spec = RunSpec(Path("d"), VERSION, SPLIT, Path("o"))
    assert spec.cache_root() == tmp_path / "features"
    assert replace(spec, feature_cache=Path("/x/f")).cache_root() == Path("/x/f")


def test_frozen_training_keeps_the_encoder_and_trains_the_decoder(
    synth_val_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tiny_experiment()
    exp = replace(exp, train=replace(exp.train, freeze_encoder=True, workers=0, warmup_steps=0, lr=1e-3))
    root = tmp_path / "features"
    spec = RunSpec(synth_val_root, VERSION, SPLIT, tmp_path / "run", 2, progress=False, feature_cache=root)
    trainer = Trainer(exp, spec)
    assert trainer.optimizer.param_groups[0]["params"] == []  # no backbone parameter is optimized
    net = trainer.module.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    calls = count_encodes(monkeypatch)
    trainer.run()
    frames = NuScenesFrames(synth_val_root, VERSION, split=SPLIT)
    assert calls["n"] == len(frames)  # the build only: training steps read the cache
    assert f"feature cache {root}" in capsys.readouterr().out

    after = net.state_dict()
    frozen = ("backbone.", "heatmap_head.", "depth_head.")
    for name, value in before.items():
        if name.startswith(frozen):  # weights and BatchNorm statistics alike
            assert torch.equal(after[name], value), name
    changed = [n for n, v in before.items() if n.startswith("layers.") and not torch.equal(after[n], v)]
    assert changed

    # A later run with the same weights and data reuses the cache.
    Trainer(exp, replace(spec, out=tmp_path / "again", max_steps=1)).run()
    assert "(reused)" in capsys.readouterr().out


def test_offline_tracking_reads_the_cache_instead_of_encoding(
    built: FeatureCache, net: TrackerNet, frames: NuScenesFrames, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncl_ros.inference.torch_backend import TorchBackend
    from syncl_ros.pipeline.offline import track_frames
    from syncl_ros.tracking.factory import make_tracker
    from syncl_ros.tracking.interface import Tracker

    exp = tiny_experiment()

    def tracker() -> Tracker:
        return make_tracker(exp.tracker, exp.model, seed=0)

    backend = TorchBackend(net.eval(), "cpu")
    fresh = track_frames(frames, backend, net.cfg, tracker, progress=False)
    calls = count_encodes(monkeypatch)
    cached = track_frames(frames, backend, net.cfg, tracker, progress=False, cache=built)
    assert calls["n"] == 0
    assert set(cached) == set(fresh) == set(frames.sample_tokens())
