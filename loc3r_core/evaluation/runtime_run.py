"""What the robot gets: every scene of a split streamed through the node's `Session`, then every
situation placed (`localize`) and every question answered (`ask`) from its memory and map.

`loc3r eval` scores the model on fixed clips (N frames spread uniformly over each walk); this
scores the runtime as it runs, with its keyframe policy, its memory's length and eviction, its
answers from the map, and its refusals (a situation it cannot place: counted as misses), on the
same metrics.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from loc3r_core.evaluation.map_quality import map_frame
from loc3r_core.evaluation.map_run import split_scenes, stream_scene, streaming_session
from loc3r_core.evaluation.metrics import LOCALIZATION_KEYS, PLACEMENT_KEYS, MetricAccumulator
from loc3r_core.geometry import invert_pose, transform_planar
from loc3r_core.runtime.backend import Backend
from loc3r_core.runtime.session import QuestionError, SessionConfig
from loc3r_core.world.scene_io import SceneFolder
from loc3r_core.world.situations import placement_kind

REFUSED = ""  # a refused question's answer: never right


def evaluate_runtime(backend: Backend, root: Path, max_scenes: int | None = None, progress: bool = True,
                     config: SessionConfig | None = None, prior: str = "odometry", motion: Path | None = None,
                     mount: str = "none") -> dict:
    """Placement and answer metrics of the streamed runtime over a split's scenes (means over every
    situation and question), with the memory and the pose prior (map_run.STREAM_PRIORS) it ran with."""
    folders = split_scenes(root, max_scenes)
    session = streaming_session(backend, config, prior, motion)
    metrics = MetricAccumulator()
    refused = {"situations": 0, "questions": 0}
    from_map, keyframes, seconds = [], [], []
    for path in tqdm(folders, unit="scene", desc="eval-runtime", disable=not progress):
        folder = SceneFolder(path)
        started = time.perf_counter()
        stream_scene(session, folder, prior == "odometry", mount)
        keyframes.append(session.keyframes_fused)
        T_map_world = invert_pose(map_frame(folder.scene))
        for situation in folder.situations:
            where, yaw = transform_planar(T_map_world, situation.position, situation.yaw)
            found = session.localize(situation.text)  # an unplaceable one still has a (vague) pose to score
            refused["situations"] += not found.placed
            pose = found.pose
            metrics.add_localization(np.array([pose.x, pose.y]), pose.yaw, np.array([pose.sigma_x, pose.sigma_y]),
                                     where, float(yaw), placement_kind(folder.scene, situation))
            for question in situation.questions:
                try:
                    answer = session.ask(question.question, situation.text)
                except QuestionError:
                    refused["questions"] += 1
                    metrics.add_answer(question.type, REFUSED, question.answer)
                    continue
                from_map.append(answer.source == "map")
                metrics.add_answer(question.type, answer.text, question.answer)
        seconds.append(time.perf_counter() - started)
    summary = metrics.summary()
    keys = (*LOCALIZATION_KEYS, *PLACEMENT_KEYS, "qa_em", "qa_em_by_type", "sigma_error_spearman",
            "position_median_error_m", "num_samples", "num_situations")
    asked = max(summary["num_samples"], 1)
    return {**{key: summary[key] for key in keys},
            "refused_situation_share": round(100.0 * refused["situations"] / max(summary["num_situations"], 1), 2),
            "refused_question_share": round(100.0 * refused["questions"] / asked, 2),
            "map_answered_share": round(100.0 * sum(from_map) / asked, 2),
            "keyframes_per_scene": round(float(np.mean(keyframes)), 2),
            "seconds_per_scene": round(float(np.mean(seconds)), 3),
            "num_scenes": len(folders),
            "max_keyframes": session.config.max_keyframes, "eviction": session.config.eviction, "prior": prior,
            "camera_mount": mount,
            "map_answer_types": list(session.config.map_answer_types),
            "map_tiebreak_types": list(session.config.map_tiebreak_types)}
