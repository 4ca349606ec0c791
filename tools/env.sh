# Source this to run loc3r with the ROS 2 interfaces built by `make` (tests, demo, a shell):
#   . tools/env.sh
# The repository comes first on PYTHONPATH so the working tree's loc3r_core/loc3r_ros win over
# the copies CMake installs; the prefix supplies the generated `loc3r` and `tf2_msgs` modules.
LOC3R_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
LOC3R_VENV=$LOC3R_ROOT/.venv
LOC3R_ROS_PREFIX=$LOC3R_ROOT/.ros/install
LOC3R_PY_SITE=$LOC3R_ROS_PREFIX/lib/python3.11/site-packages
export PATH=$LOC3R_VENV/bin:$PATH
export PYTHONPATH=$LOC3R_ROOT:$LOC3R_PY_SITE${PYTHONPATH:+:$PYTHONPATH}
export LD_LIBRARY_PATH=$LOC3R_ROS_PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export AMENT_PREFIX_PATH=$LOC3R_ROS_PREFIX:$LOC3R_VENV
export MUJOCO_GL=${MUJOCO_GL:-osmesa}
export LOC3R_ROS_PREFIX
