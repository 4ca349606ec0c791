"""Streaming frames through a session and recording what a robot would publish, as ROS 2 MCAP.

The topics mirror the node's (see the README's reference), so a recording replayed with
`ros2 bag play` looks in RViz like the live node: images, /tf, the pose, the layout, the
markers, and the questions with their answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from loc3r_core.io import ros_messages as msgs
from loc3r_core.io.mcap_writer import RosMcapWriter
from loc3r_core.runtime.floor_scale import mount_pose
from loc3r_core.runtime.frames import tf_chain
from loc3r_core.runtime.session import Answer, FrameEstimate, Session
from loc3r_core.static_transforms import DEFAULT_FLOOR_FRAME
from loc3r_core.types import InputFrame

FRAMES = {"map": "map", "odom": "odom", "base": "base_link"}


@dataclass(frozen=True)
class Topics:
    image: str = "/camera/image_raw"
    layout: str = "/loc3r/layout"
    markers: str = "/loc3r/markers"
    pose: str = "/loc3r/pose"
    question: str = "/loc3r/question"
    answer: str = "/loc3r/answer"


class McapRecorder:
    def __init__(self, writer: RosMcapWriter, topics: Topics = Topics(), frames: dict[str, str] = FRAMES) -> None:
        self.writer, self.topics, self.frames = writer, topics, frames
        self.wrote_mount = False

    def mount(self, frame: InputFrame, session: Session) -> None:
        """The camera's mount on /tf_static, as a robot's URDF gives it (base_link -> base_footprint ->
        the image's frame), once the session knows it: a recording replayed through `loc3r run` scales
        its map as the live session did."""
        if self.wrote_mount or session.camera_mount is None:
            return
        stamp = frame.stamp_ns
        # the synthetic robot's base_link lies on the floor under the camera (scenario.base_pose), so its
        # footprint coincides with it
        transforms = [msgs.transform_msg(np.eye(4), self.frames["base"], DEFAULT_FLOOR_FRAME, stamp),
                      msgs.transform_msg(mount_pose(session.camera_mount), DEFAULT_FLOOR_FRAME, frame.frame_id, stamp)]
        self.writer.write("/tf_static", "tf2_msgs/msg/TFMessage", msgs.tf_message(transforms), stamp)
        self.wrote_mount = True

    def frame(self, frame: InputFrame, estimate: FrameEstimate, session: Session) -> None:
        stamp, w = frame.stamp_ns, self.writer
        self.mount(frame, session)
        w.write(self.topics.image, "sensor_msgs/msg/Image", msgs.image_msg(frame.rgb, stamp, frame.frame_id), stamp)
        transforms = [msgs.transform_msg(pose, parent, child, stamp)
                      for parent, child, pose in tf_chain(estimate.pose, frame.odometry, self.frames, True)]
        w.write("/tf", "tf2_msgs/msg/TFMessage", msgs.tf_message(transforms), stamp)
        w.write(self.topics.pose, "geometry_msgs/msg/PoseWithCovarianceStamped",
                msgs.pose_with_covariance_msg(estimate.pose, stamp, self.frames["map"]), stamp)
        if estimate.keyframe:
            self.layout(session, stamp)

    def layout(self, session: Session, stamp: int) -> None:
        layout = session.layout()
        self.writer.write(self.topics.layout, "nav_msgs/msg/OccupancyGrid",
                          msgs.occupancy_grid_msg(layout, self.frames["map"]), stamp)
        self.writer.write(self.topics.markers, "visualization_msgs/msg/MarkerArray",
                          msgs.marker_array_msg(layout.objects, session.trajectory_xy(), stamp, self.frames["map"],
                                                walls=layout.walls), stamp)

    def qa(self, stamp: int, question: str, situation: str | None, answer: Answer) -> None:
        asked = question if situation is None else f"{situation} {question}"
        self.writer.write(self.topics.question, "std_msgs/msg/String", msgs.string_msg(asked), stamp)
        self.writer.write(self.topics.answer, "std_msgs/msg/String", msgs.string_msg(answer.text), stamp)


def stream(session: Session, frames: Iterable[InputFrame], recorder: McapRecorder | None = None,
           total: int | None = None, progress: bool = True) -> FrameEstimate | None:
    """Push every frame (with a progress bar), recording each result if a recorder is given.

    Returns the last frame's estimate; nothing per frame is kept (a long bag stays flat in memory).
    """
    estimate = None
    for frame in tqdm(frames, total=total, unit="frame", desc="streaming", disable=not progress):
        estimate = session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry)
        if recorder is not None:
            recorder.frame(frame, estimate, session)
    return estimate
