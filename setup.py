"""pip path: `pip install .` gives loc3r_core, loc3r_ros and the `loc3r` command.

The ROS path (colcon, CMakeLists.txt) installs the same two Python packages next to the
generated `loc3r` interface module; the distribution name here is only a name on PyPI.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "loc3r_core" / "__init__.py").read_text()).group(1)

setup(
    name="loc3r",
    version=VERSION,
    description="Loc3R-VLM for robots: a metric map, the robot's pose and spatial answers from one camera",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["loc3r_core", "loc3r_core.*", "loc3r_ros", "loc3r_ros.*"]),
    package_data={"loc3r_core": ["checkpoints/*/*"]},  # the shipped default model
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",  # the map's connected regions (ndimage)
        "mujoco>=3.1",
        "pillow>=10",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        # the runtime: ONNX Runtime backend (no torch needed), recordings in and out
        "onnxruntime>=1.18",
        "tokenizers>=0.22",
        "rosbags>=0.10",
        "mcap>=1.1",
        "mcap-ros2-support>=0.5",
        "av>=12",
        "psutil>=5.9",
    ],
    extras_require={
        # The model (PyTorch backend), training, evaluation and the torch Dataset. Install torch
        # yourself first on machines where the default wheel would be the wrong build.
        "train": ["torch>=2.2", "transformers>=5.0,<6", "tokenizers>=0.22", "safetensors>=0.4",
                  "accelerate>=1.0", "pyyaml>=6"],
        # `loc3r export`: the dynamo ONNX exporter
        "export": ["onnx>=1.16", "onnxscript>=0.3"],
        "dev": ["pytest>=8", "pytest-timeout>=2.2", "ruff>=0.5"],
    },
    entry_points={"console_scripts": ["loc3r = loc3r_core.cli.main:main"]},
)
