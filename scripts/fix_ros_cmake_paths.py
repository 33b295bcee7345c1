"""Point the ROS wheels' cmake exports at this venv's Python and numpy headers.

The rosidl_generator_py export files shipped in the ros-jazzy-* wheels name the
include directories of the machine that built the wheels; cmake then fails with
"Imported target ... includes non-existent path". Idempotent.
"""

import re
import sys
import sysconfig
from pathlib import Path

import numpy

BUILDER_PYTHON_INCLUDE = re.compile(r"/opt/python/cp\d+-cp\d+/include/python3\.\d+")
BUILDER_NUMPY_INCLUDE = re.compile(r"/opt/python/[^;\"]*?/site-packages/numpy/(?:_)?core/include")


def main(venv: Path) -> int:
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in sorted((venv / "share").glob("*/cmake/*__rosidl_generator_pyExport.cmake")):
        text = path.read_text()
        fixed = BUILDER_NUMPY_INCLUDE.sub(numpy_include, text)
        fixed = BUILDER_PYTHON_INCLUDE.sub(python_include, fixed)
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    if changed:
        print(f"setup: fixed include paths in {changed} cmake export files")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
