"""The package as ROS and pip see it: versions, dependencies, interfaces, import boundaries."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import loc3r_core
from conftest import ROOT

PACKAGE = ET.parse(ROOT / "package.xml").getroot()


def tags(name: str) -> set[str]:
    return {e.text for e in PACKAGE.findall(name)}


def test_versions_agree():
    assert PACKAGE.findtext("version") == loc3r_core.__version__


def test_package_xml_declares_a_ros_interface_package_with_its_run_time_dependencies():
    assert PACKAGE.get("format") == "3" and PACKAGE.findtext("name") == "loc3r"
    assert PACKAGE.findtext("export/build_type") == "ament_cmake"
    assert {"ament_cmake", "ament_cmake_python", "rosidl_default_generators"} <= tags("buildtool_depend")
    assert "rosidl_interface_packages" in tags("member_of_group")
    needed = {"rclpy", "sensor_msgs", "nav_msgs", "visualization_msgs", "diagnostic_msgs", "std_srvs", "tf2_msgs",
              "rosidl_default_runtime", "python3-numpy", "python3-scipy", "python3-pil", "python3-matplotlib"}
    assert needed <= tags("exec_depend") | tags("depend")
    email = PACKAGE.find("maintainer").get("email")
    assert re.fullmatch(r"[\w.+-]+@[\w-]+\.[\w.]{2,}", email), "catkin_pkg rejects odd addresses"


def interface_files() -> list[Path]:
    return sorted([*ROOT.glob("msg/*.msg"), *ROOT.glob("srv/*.srv")])


def test_cmakelists_generates_every_interface_and_installs_both_python_packages():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for path in interface_files():
        assert f'"{path.parent.name}/{path.name}"' in cmake, f"{path.name} is not in rosidl_generate_interfaces"
    assert "ament_python_install_package(loc3r_core)" in cmake
    assert "ament_python_install_package(loc3r_ros)" in cmake
    assert {p.name for p in interface_files()} >= {"SceneObject.msg", "SceneObjectArray.msg", "SpatialQuery.srv",
                                                   "Localize.srv"}


def test_every_interface_field_is_commented():
    """On its line, or in a comment block right above it (which rosidl attaches to the field)."""
    for path in interface_files():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            code = line.split("#", 1)[0].strip()
            if code and code != "---":
                above = lines[i - 1].strip() if i else ""
                assert "#" in line or above.startswith("#"), f"{path.name}: field without a comment: {line!r}"


def test_loc3r_core_imports_without_ros():
    code = ("import sys, loc3r_core.cli.main, loc3r_core.world.generate, loc3r_core.world.sheet, "
            "loc3r_core.data.dataset; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'loc3r', 'loc3r_ros')]; "
            "assert not bad, bad")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH", "LD_LIBRARY_PATH")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_ros_build_installs_interfaces_and_python_packages():
    prefix = os.environ.get("LOC3R_ROS_PREFIX")
    if not prefix:
        if os.environ.get("LOC3R_REQUIRE_ROS"):
            pytest.fail("LOC3R_ROS_PREFIX is unset: source tools/env.sh (make test does)")
        pytest.skip("no ROS build here (LOC3R_ROS_PREFIX unset)")
    site = Path(prefix) / "lib" / "python3.11" / "site-packages"
    for module in ("loc3r/srv/_spatial_query.py", "loc3r/srv/_localize.py", "loc3r/msg/_scene_object_array.py",
                   "loc3r_core/__init__.py", "loc3r_ros/convert.py", "tf2_msgs/msg/_tf_message.py"):
        assert (site / module).exists(), f"{module} missing from the install prefix"
    assert (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / "loc3r").exists()
