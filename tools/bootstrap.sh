#!/usr/bin/env bash
# Creates .venv with every pinned dependency (requirements.txt) and the Debian packages the
# renderer and the interface build need. Idempotent; `make` calls it when its inputs change.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}   # the ROS 2 wheels are built for CPython 3.11
VENV=.venv

# Debian packages: MuJoCo's software renderer, and the toolchain rosidl compiles with.
need=()
dpkg -s libosmesa6 >/dev/null 2>&1 || need+=(libosmesa6)
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v "$PY" >/dev/null || { echo "bootstrap: $PY not found (the ROS 2 wheels need CPython 3.11)"; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
echo "installing pinned Python packages into $VENV (first run: a few minutes)"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt 2>"$VENV/pip.err" \
  || { grep -v "^WARNING: Location" "$VENV/pip.err"; exit 1; }
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e . 2>>"$VENV/pip.err" \
  || { grep -v "^WARNING: Location" "$VENV/pip.err"; exit 1; }

# The wheels' *__rosidl_generator_pyExport.cmake name the wheel builder's include dirs;
# CMake rejects them until they point at this interpreter's and numpy's include dirs.
PYINC=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NPINC=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
[ -f "$PYINC/Python.h" ] || { echo "bootstrap: Python.h missing in $PYINC (install the python3.11 headers)"; exit 1; }
sed -i "s|/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include|$NPINC|g;
        s|/opt/python/cp311-cp311/include/python3.11|$PYINC|g" \
  "$VENV"/share/*/cmake/*__rosidl_generator_pyExport.cmake
echo "bootstrap: $VENV ready ($("$VENV/bin/python" --version))"
