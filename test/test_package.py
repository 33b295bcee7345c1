"""Package metadata agrees across package.xml, setup.py and the sources."""

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import syncl_ros

ROOT = Path(__file__).resolve().parents[1]


def setup_kwargs() -> dict[str, object]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    return {
        k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg and isinstance(k.value, ast.Constant)
    }


def test_package_xml_and_setup_py_agree() -> None:
    xml = ET.parse(ROOT / "package.xml").getroot()
    assert xml.get("format") == "3"
    setup = setup_kwargs()
    assert setup["name"] == xml.findtext("name") == "syncl_ros"
    assert setup["version"] == xml.findtext("version") == syncl_ros.__version__
    assert setup["license"] == xml.findtext("license")


def test_setup_py_package_data_names_existing_files() -> None:
    """A moved data folder would otherwise install without its files."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    keyword = next(n for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "package_data")
    for package, patterns in ast.literal_eval(keyword.value).items():
        folder = ROOT / package.replace(".", "/")
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: {pattern} matches no file"


def test_package_xml_declares_ros_dependencies() -> None:
    xml = ET.parse(ROOT / "package.xml").getroot()
    declared = {e.text for e in xml if e.tag.endswith("depend")}
    needed = {
        "rclpy",
        "sensor_msgs",
        "geometry_msgs",
        "std_msgs",
        "nav_msgs",
        "visualization_msgs",
        "vision_msgs",
        "tf2_msgs",
        "diagnostic_msgs",
        "unique_identifier_msgs",
        "builtin_interfaces",
        "cv_bridge",
        "python3-numpy",
        "rosidl_default_generators",
        "rosidl_default_runtime",
    }
    assert needed <= declared, f"missing: {sorted(needed - declared)}"
    assert xml.findtext("export/build_type") == "ament_cmake"


def test_cmake_lists_every_message_and_installed_file() -> None:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    listed = set(re.findall(r'"(msg/\w+\.msg)"', cmake))
    on_disk = {f"msg/{p.name}" for p in (ROOT / "msg").glob("*.msg")}
    assert listed == on_disk
    for program in re.search(r"install\(PROGRAMS ([^\n]*)", cmake).group(1).split():  # type: ignore[union-attr]
        if program.startswith("scripts/"):
            assert (ROOT / program).stat().st_mode & 0o111, f"{program} is not executable"
    for directory in ("launch", "config"):
        assert (ROOT / directory).is_dir()


def test_every_message_field_is_documented() -> None:
    # A field is documented by an inline comment or by the comment that opens
    # its block of lines (blocks are separated by blank lines).
    for path in sorted((ROOT / "msg").glob("*.msg")):
        block_commented = False
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if not stripped:
                block_commented = False
            elif stripped.startswith("#"):
                block_commented = True
            elif "#" not in stripped and not block_commented:
                raise AssertionError(f"{path.name}: field without a comment: {stripped}")
