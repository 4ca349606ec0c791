#!/usr/bin/env bash
# Builds this ROS package (its msg/srv with the real rosidl generators, and the Python
# packages CMakeLists.txt installs) and the test-only tf2_msgs into .ros/install, with
# plain cmake against the ROS 2 wheels in .venv. `make` calls it when the inputs change.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.venv
PREFIX=$ROOT/.ros/install
export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV   # typesupport discovery reads the ament index
unset PYTHONPATH LD_LIBRARY_PATH VIRTUAL_ENV || true
export PATH=$VENV/bin:$PATH                              # ament_cmake_python runs `python3`

build() {  # build <name> <source dir>
  local build_dir=$ROOT/.ros/build/$1
  mkdir -p "$build_dir"
  echo "building ROS package $1 into .ros/install"
  if ! { cmake -S "$2" -B "$build_dir" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
           -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$build_dir/configure.log" 2>&1 \
         && cmake --build "$build_dir" -j"$(nproc)" >"$build_dir/build.log" 2>&1 \
         && cmake --install "$build_dir" >"$build_dir/install.log" 2>&1; }; then
    echo "build of $1 failed; last lines of its logs:"
    tail -n 30 "$build_dir"/*.log
    exit 1
  fi
}
# CMake refuses include dirs inside the source tree for exported targets, and .venv (numpy's
# headers) lives in this repository; so configure from a view of the package made of links.
VIEW=$ROOT/.ros/src/loc3r
rm -rf "$VIEW"; mkdir -p "$VIEW"
for entry in package.xml CMakeLists.txt msg srv loc3r_core loc3r_ros scripts launch config rviz; do
  [ -e "$ROOT/$entry" ] && ln -s "$ROOT/$entry" "$VIEW/$entry"
done
build loc3r "$VIEW"
build tf2_msgs "$ROOT/test/ros_interfaces/tf2_msgs"
