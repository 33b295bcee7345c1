"""`syncl export`: the tracker as static-shape ONNX graphs (encoder, decoder, and the decoder cut
after each layer for early exit) plus an export.json manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from syncl_ros.inference.default_model import default_model_path


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped model)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for encoder.onnx, decoder.onnx, decoder_layer<k>.onnx, export.json",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17, parsed by TensorRT 10)")


def main(args: argparse.Namespace) -> int:
    from syncl_ros.inference.export import export_model
    from syncl_ros.inference.onnx_graph import check_tensorrt_operators

    try:
        model = args.model or default_model_path()
        result = export_model(model, args.out, args.opset)
    except (FileNotFoundError, ValueError) as err:
        print(f"syncl export: {err}", file=sys.stderr)
        return 2
    for name, graph in result.manifest["graphs"].items():
        shapes = ", ".join(f"{t['name']} {tuple(t['shape'])}" for t in graph["inputs"])
        print(f"{name}: {result.folder / graph['file']}  sha256 {graph['sha256'][:16]}  inputs {shapes}")
        print(f"  TensorRT parser check: {check_tensorrt_operators(result.folder / graph['file'])}")
    print(f"manifest: {result.folder / 'export.json'}")
    return 0
