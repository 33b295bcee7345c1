"""ONNX export: static TensorRT-friendly graphs, manifest, determinism, numerical match with torch."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from training_fixtures import TINY_MODEL, tiny_experiment

from syncl_ros.experiment import Experiment, load_experiment
from syncl_ros.experiment.checkpoint import save_checkpoint
from syncl_ros.inference import export_cli
from syncl_ros.inference.export import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    DEFAULT_OPSET,
    DecoderGraph,
    EncoderGraph,
    boxes_from_codes,
    export_model,
    read_manifest,
    sha256_file,
)
from syncl_ros.inference.onnx_graph import (
    TENSORRT_OPS_FILE,
    dynamic_tensors,
    operator_types,
    read_operator_list,
    tensorrt_problems,
    topk_constant_k,
)
from syncl_ros.model.box_coder import BoxCoder
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.bench import rig_img2lidar


def write_checkpoint(path: Path, experiment: Experiment, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(path, TrackerNet(experiment.model).eval(), experiment, {"weights": "random"})


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("export")
    ckpt = write_checkpoint(root / "small.pt", tiny_experiment())
    export_model(ckpt, root / "out")
    return ckpt, root / "out"


# Tracks re-anchored to heatmap seeds within a gate wide enough for every track (so several
# compete for one seed), reading their seed's content and claiming it.
CLAIMING = replace(TINY_MODEL, track_reanchor_m=500.0, track_seed_content=True, track_claims_seed=True)


@pytest.fixture(scope="module")
def reanchored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tracks re-anchored to heatmap seeds, reading their content and claiming them (gate wide
    enough for every track, so several tracks compete for one seed), with asymmetric attention."""
    root = tmp_path_factory.mktemp("reanchored")
    model = replace(CLAIMING, track_attention="asymmetric")
    ckpt = write_checkpoint(root / "reanchored.pt", tiny_experiment(model=model))
    export_model(ckpt, root / "out")
    return ckpt, root / "out"


@pytest.fixture(scope="module")
def seed_only(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Claiming tracks whose query at a seed is the seed's content without their memory's update
    (model.track_seed_memory off, with a non-zero update so that the switch shows); tracks that
    lose a contested seed still read their memory."""
    root = tmp_path_factory.mktemp("seed_only")
    model = replace(CLAIMING, track_seed_memory=False)
    torch.manual_seed(0)
    net = TrackerNet(model).eval()
    with torch.no_grad():
        for p in net.track_update.parameters():
            p.normal_(0.0, 0.5)
    ckpt = save_checkpoint(root / "seed_only.pt", net, tiny_experiment(model=model), {"weights": "random"})
    export_model(ckpt, root / "out")
    return ckpt, root / "out"


@pytest.fixture(scope="module")
def depth_pe(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The depth switches on: a per-cell depth distribution whose mean places each image token."""
    root = tmp_path_factory.mktemp("depth_pe")
    model = replace(TINY_MODEL, depth_distribution=True, position_embedding="depth")
    ckpt = write_checkpoint(root / "depth_pe.pt", tiny_experiment(model=model))
    export_model(ckpt, root / "out")
    return ckpt, root / "out"


@pytest.fixture(scope="module")
def fine_depth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shipped model's switches plus the fine center depth, computed in the encoder graph from
    the stride-8 level and handed to the decoder graph as one more feature channel."""
    root = tmp_path_factory.mktemp("fine_depth")
    model = replace(TINY_MODEL, depth_distribution=True, position_embedding="depth", fine_center_depth=True)
    ckpt = write_checkpoint(root / "fine_depth.pt", tiny_experiment(model=model))
    export_model(ckpt, root / "out")
    return ckpt, root / "out"


@pytest.fixture(scope="module")
def tiny_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config/tiny.yaml (the shipped model's shapes) with random weights, exported."""
    root = tmp_path_factory.mktemp("tiny")
    ckpt = write_checkpoint(root / "tiny.pt", load_experiment("tiny"))
    export_model(ckpt, root / "out")
    return root / "out"


def test_manifest_describes_both_graphs(small: tuple[Path, Path]) -> None:
    ckpt, out = small
    manifest = read_manifest(out)  # also verifies both ONNX sha256s
    cfg = tiny_experiment().model
    m = cfg.num_queries + cfg.dense_queries + cfg.num_slots
    assert manifest["opset"] == DEFAULT_OPSET == 17
    assert manifest["source_checkpoint_sha256"] == sha256_file(ckpt)
    assert manifest["experiment"]["model"]["embed_dim"] == cfg.embed_dim
    assert (manifest["num_det"], manifest["num_slots"]) == (
        cfg.num_queries + cfg.dense_queries,
        cfg.num_slots,
    )
    enc, dec = manifest["graphs"]["encoder"], manifest["graphs"]["decoder"]
    assert [t["name"] for t in enc["inputs"]] == ["images"]
    assert enc["inputs"][0]["shape"] == [1, 6, 3, cfg.input.height, cfg.input.width]
    assert [t["name"] for t in dec["inputs"]] == list(DECODER_INPUTS)
    assert [t["name"] for t in dec["outputs"]] == list(DECODER_OUTPUTS)
    assert dec["outputs"][0]["shape"] == [1, m, cfg.num_classes]
    assert all(t["dtype"] == "float32" for g in (enc, dec) for t in g["inputs"] + g["outputs"])
    for graph in (enc, dec):
        assert sha256_file(out / graph["file"]) == graph["sha256"]
    text = (out / "export.json").read_text()
    assert str(out) not in text and str(ckpt) not in text  # no paths: the manifest is reproducible


def test_onnx_files_match_the_manifest_shapes(small: tuple[Path, Path]) -> None:
    _, out = small
    manifest = read_manifest(out)
    for graph in manifest["graphs"].values():
        model = onnx.load(str(out / graph["file"]))
        onnx.checker.check_model(model, full_check=True)
        for values, specs in ((model.graph.input, graph["inputs"]), (model.graph.output, graph["outputs"])):
            dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
            assert dims == {s["name"]: s["shape"] for s in specs}


@pytest.mark.slow  # exports or benchmarks a whole model: seconds
def test_export_is_deterministic(small: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, out = small
    again = export_model(ckpt, tmp_path / "again")
    for name in ("encoder.onnx", "decoder.onnx", "export.json"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    assert again.manifest == read_manifest(out)


@pytest.mark.slow  # exports or benchmarks a whole model: seconds
def test_graphs_stay_within_tensorrt_parser_support(
    tiny_default: Path,
    reanchored: tuple[Path, Path],
    depth_pe: tuple[Path, Path],
    fine_depth: tuple[Path, Path],
) -> None:
    reanchored_out = reanchored[1]
    supported = read_operator_list(TENSORRT_OPS_FILE)
    header = TENSORRT_OPS_FILE.read_text().splitlines()[:8]
    assert any("TensorRT 10" in line for line in header)
    assert {"Conv", "MatMul", "TopK", "LayerNormalization"} <= supported and "Atan2" not in supported
    cfg = load_experiment("tiny").model
    for name in ("encoder.onnx", "decoder.onnx"):
        model = onnx.load(str(tiny_default / name))
        assert model.opset_import[0].version == 17
        assert operator_types(model) <= supported, operator_types(model) - supported
        assert "NonZero" not in operator_types(model)
        assert dynamic_tensors(model) == []  # every input, intermediate and output shape is static
        assert tensorrt_problems(model, supported) == []
    reanchored = onnx.load(str(reanchored_out / "decoder.onnx"))
    assert operator_types(reanchored) <= supported and tensorrt_problems(reanchored, supported) == []
    depth_decoder = onnx.load(str(depth_pe[1] / "decoder.onnx"))
    assert "Softmax" in operator_types(depth_decoder)  # the depth distribution is in the graph
    assert operator_types(depth_decoder) <= supported, operator_types(depth_decoder) - supported
    assert dynamic_tensors(depth_decoder) == [] and tensorrt_problems(depth_decoder, supported) == []
    for name in ("encoder.onnx", "decoder.onnx"):
        model = onnx.load(str(fine_depth[1] / name))
        assert operator_types(model) <= supported, operator_types(model) - supported
        assert dynamic_tensors(model) == [] and tensorrt_problems(model, supported) == []
    decoder = onnx.load(str(tiny_default / "decoder.onnx"))
    assert topk_constant_k(decoder) == [cfg.dense_queries]
    topk = next(n for n in decoder.graph.node if n.op_type == "TopK")
    assert {a.name: a.i for a in topk.attribute}["sorted"] == 1


def test_checks_flag_what_tensorrt_would_reject() -> None:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])
    k = onnx.helper.make_tensor_value_info("k", onnx.TensorProto.INT64, [1])
    vals = onnx.helper.make_tensor_value_info("v", onnx.TensorProto.FLOAT, None)
    idx = onnx.helper.make_tensor_value_info("i", onnx.TensorProto.INT64, None)
    nodes = [
        onnx.helper.make_node("TopK", ["x", "k"], ["v", "i"]),
        onnx.helper.make_node("NonZero", ["x"], ["nz"]),
    ]
    graph = onnx.helper.make_graph(nodes, "g", [x, k], [vals, idx])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    problems = " ".join(tensorrt_problems(model, {"TopK"}))
    assert "NonZero" in problems and "static" in problems and "not a constant" in problems


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("graphs", ["small", "reanchored", "seed_only", "depth_pe", "fine_depth"])
def test_onnx_graphs_match_torch(graphs: str, request: pytest.FixtureRequest) -> None:
    ckpt, out = request.getfixturevalue(graphs)
    from syncl_ros.experiment.checkpoint import load_model

    net, exp, _ = load_model(ckpt)
    cfg = exp.model
    rng = np.random.default_rng(0)
    images = rng.standard_normal((1, 6, 3, cfg.input.height, cfg.input.width), dtype=np.float32)
    s, c = cfg.num_slots, cfg.embed_dim
    mask = np.zeros((1, s), np.float32)
    mask[0, :3] = 1.0
    feeds = {
        "img2lidar": rig_img2lidar(cfg)[None],
        "track_embeddings": rng.standard_normal((1, s, c), dtype=np.float32),
        "track_refs": rng.uniform(0.3, 0.7, (1, s, 3)).astype(np.float32),
        "track_mask": mask,
        "camera_mask": np.array([[1, 1, 0, 1, 1, 1]], np.float32),  # a frame without CAM_BACK_RIGHT
    }
    feats = _session(out / "encoder.onnx").run(None, {"images": images})[0]
    onnx_out = _session(out / "decoder.onnx").run(None, {"features": feats, **feeds})
    with torch.inference_mode():
        t_feats = EncoderGraph(net)(torch.from_numpy(images))
        t_out = DecoderGraph(net)(t_feats, *(torch.from_numpy(v) for v in feeds.values()))
    np.testing.assert_allclose(feats, t_feats.numpy(), atol=1e-4)
    for name, a, b in zip(DECODER_OUTPUTS, onnx_out, t_out, strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-3, rtol=1e-4, err_msg=name)


def test_host_box_decoding_matches_the_torch_coder() -> None:
    codes = torch.randn(50, 10)
    expected = BoxCoder.to_boxes(codes).numpy()
    np.testing.assert_allclose(boxes_from_codes(codes.numpy()), expected, rtol=1e-5, atol=1e-5)


def test_export_cli(small: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, _ = small
    parser = argparse.ArgumentParser()
    export_cli.configure_parser(parser)
    assert export_cli.main(parser.parse_args(["--model", str(ckpt), "--out", str(tmp_path / "cli")])) == 0
    printed = capsys.readouterr().out
    assert "TensorRT parser check: ok" in printed and "PROBLEMS" not in printed
    assert json.loads((tmp_path / "cli" / "export.json").read_text())["opset"] == 17
    missing = parser.parse_args(["--model", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x")])
    assert export_cli.main(missing) == 2


def test_changed_onnx_file_fails_verification(small: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, _ = small
    out = export_model(ckpt, tmp_path / "e").folder
    data = bytearray((out / "decoder.onnx").read_bytes())
    data[-1] ^= 0xFF
    (out / "decoder.onnx").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="decoder"):
        read_manifest(out)
