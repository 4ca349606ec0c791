"""Which OpenGL backend MuJoCo renders with: MUJOCO_GL, "osmesa" (software, any CPU) unless set.

MuJoCo reads MUJOCO_GL once, when first imported, so this runs before that import.
"""

from __future__ import annotations

import os

DEFAULT_BACKEND = "osmesa"


def backend() -> str:
    return os.environ.setdefault("MUJOCO_GL", DEFAULT_BACKEND)
