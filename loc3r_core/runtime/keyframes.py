"""When a frame becomes a keyframe: enough motion since the last one, or enough time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loc3r_core.geometry import relative_planar

# Keyframes the memory holds by default (the runtime's and the node's). The shipped model was
# trained on 12-frame clips (P37 on); streamed with the memory spread over the walk it places and
# answers better from more of it (val / val-big, loc@1m: 8 79.3 / 66.7, 12 85.0 / 69.8, 16 87.1
# / 71.2, 20 87.1 / 71.6; the map level; results/experiments.md, session 36): 20 holds all the
# keyframes of most one-room walks.
MEMORY_KEYFRAMES = 20


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


EVICTIONS = ("oldest", "pose", "time")


def evicted(poses: np.ndarray, stamps_ns: np.ndarray, count: int, policy: KeyframePolicy, rule: str) -> list[int]:
    """Which `count` of a full memory's keyframes (poses (N, 3) x, y, yaw; stamps (N,), in time
    order) to drop, the newest always kept. "oldest": the first ones. "time": one by one, the
    keyframe whose removal leaves the smallest gap in time between its neighbours (the oldest:
    twice the gap to the next), so the memory keeps a spread over the session. "pose": one by
    one, the older of the two keyframes nearest each other in pose (in units of the policy's
    keyframe thresholds), so the memory keeps views of distinct places and directions."""
    if rule not in EVICTIONS:
        raise ValueError(f"eviction must be one of {EVICTIONS}, not {rule!r}")
    if rule == "oldest":
        return list(range(count))
    kept = list(range(len(poses)))
    for _ in range(count):
        if rule == "time":
            drop = kept[min(range(len(kept) - 1), key=lambda at: _gap_left(stamps_ns[kept], at))]
        else:
            drop = min(kept[:-1], key=lambda i: min(_pose_distance(poses[i], poses[j], policy) for j in kept if j > i))
        kept.remove(drop)
    return sorted(set(range(len(poses))) - set(kept))


def _gap_left(stamps_ns: np.ndarray, at: int) -> int:
    """The time between the neighbours of keyframe `at` once it is gone (the first: mirrored)."""
    after = int(stamps_ns[at + 1] - stamps_ns[at])
    return after + (int(stamps_ns[at] - stamps_ns[at - 1]) if at else after)


def _pose_distance(a: np.ndarray, b: np.ndarray, policy: KeyframePolicy) -> float:
    moved = relative_planar(a, b)
    return max(math.hypot(moved[0], moved[1]) / policy.min_translation,
               abs(math.degrees(moved[2])) / policy.min_rotation_deg)
