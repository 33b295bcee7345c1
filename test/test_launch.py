"""launch/tracker.launch.py, checked without the launch packages (not installable here):
it parses, names the installed executable and existing files, and its arguments match the
node's declared parameters; config/tracker.yaml lists every declared parameter with its default
(those unset by default commented out), as the typed settings declare them."""

import ast
import re
from pathlib import Path

import yaml

from syncl_ros.config import parse
from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.ros.parameters import parameter_specs
from syncl_ros.ros.settings import NodeSettings
from syncl_ros.tracking.config import TrackerConfig

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "tracker.launch.py"
PARAMS_FILE = ROOT / "config" / "tracker.yaml"
SPECS = {spec.name: spec for spec in parameter_specs(NodeSettings)}
DEFAULTS = {name: spec.default for name, spec in SPECS.items() if spec.default is not None}
# Node parameters set by launch arguments of the same name (tracker: tracker.method, when given).
LAUNCH_PARAMS = {
    "model",
    "backend",
    "autostart",
    "camera_timeout_s",
    "frame_timeout_s",
    "min_cameras",
    "min_frame_cameras",
    "max_ego_gap_s",
    "overlay",
}


def params_file() -> dict[str, object]:
    params: dict[str, object] = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
    return params


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


def commented_block(key: str) -> dict[str, object]:
    """The commented-out YAML section of the params file that starts with `# key:`."""
    lines, inside = [], False
    for line in PARAMS_FILE.read_text().splitlines():
        if line.startswith(f"    # {key}:"):
            inside = True
        elif inside and not line.startswith("    #   "):
            break
        if inside:
            lines.append(line[len("    # ") :])
    block: dict[str, object] = yaml.safe_load("\n".join(lines))
    return block


def flatten(data: dict[str, object], prefix: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}"
        out.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return out


def test_default_params_file_exists_and_sets_only_declared_parameters() -> None:
    source = LAUNCH.read_text()
    assert 'share / "config" / "tracker.yaml"' in source
    params = params_file()
    assert set(params) <= set(DEFAULTS), sorted(set(params) - set(DEFAULTS))
    for name, value in params.items():
        assert value == DEFAULTS[name] and type(value) is type(DEFAULTS[name]), name


def test_default_params_file_lists_every_declared_parameter() -> None:
    missing = sorted(set(DEFAULTS) - set(params_file()))
    assert not missing, f"declared by the node but missing from {PARAMS_FILE.name}: {missing}"
    unset = {name for name, spec in SPECS.items() if spec.default is None}
    assert "process_period_s" in unset and "# process_period_s:" in PARAMS_FILE.read_text()
    shown = commented_block("tracker")["tracker"]
    assert isinstance(shown, dict)
    assert set(flatten(shown, "tracker")) == {n for n in unset if n.startswith("tracker.")}
    assert parse(TrackerConfig, shown) == TrackerConfig()  # the values shown are the defaults


def test_launch_arguments_match_node_parameters() -> None:
    tree = ast.parse(LAUNCH.read_text())
    declared = {}
    for call in calls(tree, "DeclareLaunchArgument"):
        first = call.args[0]
        if isinstance(first, ast.Constant):
            declared[first.value] = keyword(call, "default_value")
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
    assert {"params_file", "use_sim_time", "namespace", "tracker"} | LAUNCH_PARAMS <= set(declared)
    # tracker:=METHOD sets tracker.method; empty (the default) leaves it unset: the model's method
    assert ast.literal_eval(declared["tracker"]) == "" and "tracker.method" in SPECS
    assert '{"tracker.method": method} if method else {}' in LAUNCH.read_text()
    # every override the launch file passes to the node is a declared node parameter (or use_sim_time)
    (overrides,) = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "overrides"
    ]
    values = dict(zip(overrides.value.keys, overrides.value.values, strict=True))  # type: ignore[attr-defined]
    keys = {ast.literal_eval(k) for k in values}
    assert keys - {"use_sim_time"} <= set(SPECS)
    assert {"image_topics", "camera_info_topics"} | LAUNCH_PARAMS <= keys
    # A launch argument overrides the parameter file: its default must be the file's value, and
    # a typed one (ParameterValue) must have the node parameter's type.
    params = params_file()
    for key_node, value in values.items():
        name = ast.literal_eval(key_node)
        if name in declared and name in params:
            default = ast.literal_eval(declared[name])
            assert (yaml.safe_load(default) if default else "") == params[name], name
        if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "ParameterValue":
            value_type = getattr(keyword(value, "value_type"), "id", "")
            assert value_type == type(SPECS[name].default).__name__, name


def test_rviz_config_shows_the_node_markers() -> None:
    rviz = yaml.safe_load((ROOT / "config" / "tracker.rviz").read_text())
    displays = rviz["Visualization Manager"]["Displays"]
    markers = [d for d in displays if d["Class"] == "rviz_default_plugins/MarkerArray"]
    assert markers and markers[0]["Topic"]["Value"] == "/syncl_tracker/markers"
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == NodeSettings().base_frame
