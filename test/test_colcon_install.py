"""`colcon build` of the package installs messages, Python package, executables,
launch and config the way `ros2 run` / `ros2 launch` expect."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SKIP = shutil.ignore_patterns(
    ".venv", "build", "install", "log", ".git", "__pycache__", "*_cache", "interfaces", "demo_out", "out"
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    colcon = shutil.which("colcon", path=str(VENV_BIN)) or shutil.which("colcon")
    if colcon is None:
        pytest.fail("colcon is not installed (make setup installs it)")
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(ROOT, ws / "src" / "syncl_ros", ignore=SKIP)
    prefix = str(Path(sys.prefix))
    env = dict(
        os.environ,
        AMENT_PREFIX_PATH=os.environ.get("AMENT_PREFIX_PATH", prefix),
        CMAKE_PREFIX_PATH=os.environ.get("CMAKE_PREFIX_PATH", prefix),
    )
    subprocess.run(
        [
            colcon,
            "build",
            "--packages-select",
            "syncl_ros",
            "--cmake-args",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DBUILD_TESTING=OFF",
        ],
        cwd=ws,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return ws


def in_workspace(ws: Path, command: str) -> str:
    """Run a shell command with the workspace's local_setup.bash sourced, as a user would."""
    script = f"source install/local_setup.bash && {command}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    result = subprocess.run(
        ["bash", "-c", script], cwd=ws, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_installs_executables_launch_and_config(workspace: Path) -> None:
    prefix = workspace / "install" / "syncl_ros"
    for exe in ("tracker_node", "syncl"):
        assert os.access(prefix / "lib" / "syncl_ros" / exe, os.X_OK), exe
    share = prefix / "share" / "syncl_ros"
    assert (share / "launch" / "tracker.launch.py").is_file()
    assert sorted(p.name for p in (share / "config").glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "config").glob("*.yaml")
    )


def test_installed_package_has_messages_and_modules(workspace: Path) -> None:
    out = in_workspace(
        workspace,
        f"{sys.executable} -c '"
        "import syncl_ros.geometry as g, syncl_ros.msg as m, syncl_ros.config as c\n"
        "from ament_index_python.packages import get_package_share_directory as share\n"
        "m.TrackedObject3DArray(); print(g.__file__); print(m.__file__);"
        ' print(share("syncl_ros")); print(c.config_dir())\'',
    )
    geometry_file, msg_file, share_dir, config_dir = out.split()
    prefix = str(workspace / "install" / "syncl_ros")
    assert geometry_file.startswith(prefix) and msg_file.startswith(prefix)
    assert share_dir == f"{prefix}/share/syncl_ros"
    assert config_dir == f"{prefix}/share/syncl_ros/config"


def test_installed_cli_runs(workspace: Path) -> None:
    out = in_workspace(workspace, "install/syncl_ros/lib/syncl_ros/syncl --help")
    assert "build-engine" in out


def test_installed_package_ships_the_default_model(workspace: Path) -> None:
    out = in_workspace(
        workspace,
        f"{sys.executable} -c 'from syncl_ros.inference.default_model import default_model_path as path;"
        " print(path())'",
    )
    assert out.strip().startswith(str(workspace / "install" / "syncl_ros")), out
