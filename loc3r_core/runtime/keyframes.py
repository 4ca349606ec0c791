"""When a frame becomes a keyframe: enough motion since the last one, or enough time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loc3r_core.geometry import relative_planar

# Keyframes the memory holds by default (the runtime's and the node's): the clip length the
# shipped model was trained on (P37, 12-frame clips). Its predecessor, trained on 8, answered
# better from 12 but drew a worse map from them (results/experiments.md, session 24).
MEMORY_KEYFRAMES = 12


@dataclass(frozen=True)
class KeyframePolicy:
    min_translation: float = 0.4  # metres since the last keyframe
    min_rotation_deg: float = 20.0
    max_interval_s: float = 3.0  # a robot standing still still refreshes its memory

    def is_keyframe(self, pose: np.ndarray, stamp_ns: int, last_pose: np.ndarray | None, last_stamp_ns: int) -> bool:
        if last_pose is None:
            return True
        moved = relative_planar(last_pose, pose)
        return (math.hypot(moved[0], moved[1]) >= self.min_translation
                or abs(math.degrees(moved[2])) >= self.min_rotation_deg
                or (stamp_ns - last_stamp_ns) * 1e-9 >= self.max_interval_s)
