"""launch/tracker.launch.py, checked without the launch packages (not installable here):
it parses, names the installed executable and existing files, and its arguments match the
node's declared parameters."""

import ast
import re
from pathlib import Path

import yaml

from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.ros.settings import PARAMS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "tracker.launch.py"


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == name]


def keyword(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


def test_launch_file_parses_and_runs_the_installed_executable() -> None:
    tree = ast.parse(LAUNCH.read_text())
    (node,) = calls(tree, "Node")
    assert ast.literal_eval(keyword(node, "package")) == "syncl_ros"
    executable = ast.literal_eval(keyword(node, "executable"))
    installed = re.search(r"install\(PROGRAMS ([^\n]*)", (ROOT / "CMakeLists.txt").read_text())
    assert installed and f"scripts/{executable}" in installed.group(1).split()
    assert (ROOT / "scripts" / executable).is_file()
    assert "generate_launch_description" in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}


def test_default_params_file_exists_and_sets_only_declared_parameters() -> None:
    source = LAUNCH.read_text()
    assert 'share / "config" / "tracker.yaml"' in source
    params = yaml.safe_load((ROOT / "config" / "tracker.yaml").read_text())["/**"]["ros__parameters"]
    assert set(params) <= set(PARAMS), sorted(set(params) - set(PARAMS))
    for name, value in params.items():
        default = PARAMS[name].default
        assert type(value) is type(default) or (isinstance(default, float) and isinstance(value, float)), name


def test_launch_arguments_match_node_parameters() -> None:
    tree = ast.parse(LAUNCH.read_text())
    declared = set()
    for call in calls(tree, "DeclareLaunchArgument"):
        first = call.args[0]
        if isinstance(first, ast.Constant):
            declared.add(first.value)
    # per-camera arguments are built in a loop: check the loop's shapes against the rig
    assert "for channel in CAMERAS" in LAUNCH.read_text()
    cameras = ast.literal_eval(
        next(
            n.value
            for n in tree.body
            if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "CAMERAS"
        )
    )
    assert tuple(cameras) == CAMERA_CHANNELS
    assert {"params_file", "model", "backend", "tracker", "use_sim_time", "namespace"} <= declared
    # every override the launch file passes to the node is a declared node parameter (or use_sim_time)
    (overrides,) = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "overrides"
    ]
    keys = {ast.literal_eval(k) for k in overrides.value.keys}  # type: ignore[attr-defined]
    assert keys - {"use_sim_time"} <= set(PARAMS)
    assert {"image_topics", "camera_info_topics"} <= keys


def test_rviz_config_shows_the_node_markers() -> None:
    rviz = yaml.safe_load((ROOT / "config" / "tracker.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    markers = [d for d in displays if d["Class"] == "rviz_default_plugins/MarkerArray"]
    assert markers and markers[0]["Topic"]["Value"] == "/syncl_tracker/markers"
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == PARAMS["base_frame"].default
