"""`loc3r demo`, `loc3r run` and `loc3r bench` end to end, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin
from test_mcap_output import ros_class, ros_types
from test_recording import T, camera_info, header, raw_image, storage_file, write_bag, write_video

from conftest import run_cli
from loc3r_core.geometry import invert_pose, make_pose
from loc3r_core.quaternions import quaternion_from_matrix
from loc3r_core.runtime.floor_scale import mount_pose
from loc3r_core.runtime.scenario import scene_camera_mount, scene_frames
from loc3r_core.world.scene_io import SceneFolder

S = 1_000_000_000


def odometry_msg(stamp_ns: int, pose: np.ndarray, nan: bool = False):
    geo = "geometry_msgs/msg/"
    yaw = np.arctan2(pose[1, 0], pose[0, 0])
    position = T[geo + "Point"](x=float("nan") if nan else pose[0, 3], y=pose[1, 3], z=0.0)
    orientation = T[geo + "Quaternion"](x=0.0, y=0.0, z=np.sin(yaw / 2), w=np.cos(yaw / 2))
    zero = T[geo + "Vector3"](x=0.0, y=0.0, z=0.0)
    return T["nav_msgs/msg/Odometry"](
        header=header(stamp_ns, "odom"), child_frame_id="base_link",
        pose=T[geo + "PoseWithCovariance"](pose=T[geo + "Pose"](position=position, orientation=orientation),
                                           covariance=np.zeros(36)),
        twist=T[geo + "TwistWithCovariance"](twist=T[geo + "Twist"](linear=zero, angular=zero),
                                             covariance=np.zeros(36)))


def static_transforms_msg(stamp_ns: int, transforms: list[tuple[str, str, np.ndarray]]):
    geo = "geometry_msgs/msg/"
    stamped = []
    for parent, child, pose in transforms:
        x, y, z, w = quaternion_from_matrix(pose[:3, :3])
        stamped.append(T[geo + "TransformStamped"](header=header(stamp_ns, parent), child_frame_id=child, transform=T[
            geo + "Transform"](translation=T[geo + "Vector3"](x=pose[0, 3], y=pose[1, 3], z=pose[2, 3]),
                               rotation=T[geo + "Quaternion"](x=x, y=y, z=z, w=w))))
    return T["tf2_msgs/msg/TFMessage"](transforms=stamped)


def scene_bag(path: Path, folder: SceneFolder, storage: StoragePlugin, encoding: str = "bgr8",
              nan_at: int | None = None, mount: bool = False) -> Path:
    """The scene as a robot would record it: bgr8 camera images, camera info and odometry at 1 s + frame time,
    and if asked the camera's mount on /tf_static (base_footprint -> base_link -> the images' frame)."""
    messages = []
    if mount:
        T_fp_camera = mount_pose(scene_camera_mount(folder))
        T_fp_bl = make_pose(np.eye(3), np.array([0.0, 0.0, 0.1]))
        chain = [("base_footprint", "base_link", T_fp_bl),
                 ("base_link", "cam_optical", invert_pose(T_fp_bl) @ T_fp_camera)]
        messages.append(("/tf_static", S - 10, static_transforms_msg(S - 10, chain)))
    for i, frame in enumerate(scene_frames(folder, start_ns=S)):
        k = frame.intrinsics
        pixels = frame.rgb[:, :, ::-1] if encoding == "bgr8" else frame.rgb[:, :, :1].astype(np.uint16)
        messages.append(("/camera/camera_info", frame.stamp_ns - 1,
                         camera_info(frame.stamp_ns - 1, (k.fx, k.fy, k.cx, k.cy), k.width, k.height)))
        messages.append(("/odom", frame.stamp_ns - 2, odometry_msg(frame.stamp_ns - 2, frame.odometry)))
        messages.append(("/odom", frame.stamp_ns + 2, odometry_msg(frame.stamp_ns + 2, frame.odometry, i == nan_at)))
        image = raw_image(frame.stamp_ns, "bgr8", np.ascontiguousarray(pixels)) if encoding == "bgr8" else \
            T["sensor_msgs/msg/Image"](header=header(frame.stamp_ns), height=k.height, width=k.width,
                                       encoding=encoding, is_bigendian=0, step=2 * k.width,
                                       data=np.zeros(2 * k.width * k.height, np.uint8))
        messages.append(("/camera/image_raw", frame.stamp_ns + 1, image))
    return write_bag(path, storage, sorted(messages, key=lambda m: m[1]))


@pytest.fixture(scope="module")
def folder(world_by_kind) -> SceneFolder:
    return SceneFolder(sorted(world_by_kind["walk"].glob("scene_*"))[0])


def all_messages(path: Path) -> list[tuple[str, str, bytes]]:
    with path.open("rb") as stream:
        return [(channel.topic, schema.name, message.data)
                for schema, channel, message in make_reader(stream).iter_messages()]


def test_demo_writes_an_mcap_every_message_of_which_rclpy_decodes(tmp_path):
    result = run_cli("demo", "--out", tmp_path, "--no-progress", timeout=180, check=True)
    assert "where the model places situations" in result.stdout and "truth:" in result.stdout
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    from rclpy.serialization import deserialize_message

    ros_types()  # rclpy and tf2_msgs importable (skips, or fails under LOC3R_REQUIRE_ROS)
    messages = all_messages(tmp_path / "demo.mcap")
    topics = {topic for topic, _, _ in messages}
    assert {"/camera/image_raw", "/tf", "/loc3r/pose", "/loc3r/layout", "/loc3r/markers", "/loc3r/question",
            "/loc3r/answer"} <= topics
    for topic, type_name, data in messages:  # the independent reader: rclpy's own CDR deserializer
        message = deserialize_message(data, ros_class(type_name))
        if topic == "/loc3r/layout":
            assert set(np.unique(np.asarray(message.data))) <= {-1, 0, 100}
            assert message.header.frame_id == "map" and message.info.resolution > 0
        if topic == "/tf":
            assert {t.header.frame_id for t in message.transforms} == {"map", "odom"}
    with AnyReader([tmp_path / "demo.mcap"]) as reader:  # and as a rosbag2 MCAP bag, the way ros2 bag play opens it
        assert sum(1 for _ in reader.messages()) == len(messages)


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"])
def test_run_reads_a_bag_streams_it_and_answers(tmp_path, folder, storage):
    bag = scene_bag(tmp_path / "bag", folder, storage)
    out = tmp_path / "out" / "run.mcap"
    result = run_cli("run", "--input", bag, "--image-topic", "/camera/image_raw", "--camera-info-topic",
                     "/camera/camera_info", "--odom-topic", "/odom", "--out", out, "--no-progress",
                     "--ask", "How many chairs are there?", "--ask", "What is in front of me?",
                     "--situation", folder.situations[0].text, "--png", tmp_path / "run.png",
                     "--camera-height", str(folder.meta["camera_height"]),
                     "--camera-pitch", str(folder.meta["camera_pitch_deg"]), check=True)
    assert result.stdout.count("A: ") == 2
    assert f"{len(folder.scene.frames)} frames" in result.stdout
    messages = all_messages(out)
    assert sum(topic == "/camera/image_raw" for topic, _, _ in messages) == len(folder.scene.frames)
    assert sum(topic == "/loc3r/answer" for topic, _, _ in messages) == 2
    assert (tmp_path / "run.png").exists()


def test_run_takes_the_camera_mount_from_the_bags_static_transforms(tmp_path, folder):
    bag = scene_bag(tmp_path / "bag", folder, StoragePlugin.MCAP, mount=True)
    truth = scene_camera_mount(folder)
    base = ["run", "--input", bag, "--max-frames", "3", "--no-progress"]
    found = run_cli(*base, "--out", tmp_path / "a.mcap", check=True).stdout
    assert (f"camera mount from /tf_static: {truth.height_m:.3f} m above base_footprint, pitch "
            f"{truth.pitch_deg:+.1f} deg") in found
    with AnyReader([tmp_path / "a.mcap"]) as reader:  # and the output carries it on, for the next replay
        assert "/tf_static" in {c.topic for c in reader.connections}
    unjoined = run_cli(*base, "--out", tmp_path / "b.mcap", "--floor-frame", "odom", check=True).stdout
    assert "camera mount: none (no chain of static transforms from odom to the image's frame cam_optical" in unjoined
    ignored = run_cli(*base, "--out", tmp_path / "c.mcap", "--no-tf-mount", check=True).stdout
    assert "camera mount" not in ignored
    given = run_cli(*base, "--out", tmp_path / "d.mcap", "--camera-height", "0.5", check=True).stdout
    assert "camera mount" not in given  # the user's own figure wins


def test_run_reads_a_video(tmp_path, folder):
    video = tmp_path / "walk.mp4"
    write_video(video, 12)
    result = run_cli("run", "--input", video, "--out", tmp_path / "video.mcap", "--no-progress",
                     "--ask", "How many chairs are there?", check=True)
    assert "12 frames" in result.stdout and "A: " in result.stdout


def one_line_failure(result, *needles: str) -> None:
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_run_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, folder):
    bag = scene_bag(tmp_path / "bag", folder, StoragePlugin.MCAP)
    out = tmp_path / "out.mcap"
    base = ["run", "--out", out, "--no-progress"]
    one_line_failure(run_cli(*base, "--input", bag, "--image-topic", "/front/image"),
                     "/front/image", "/camera/image_raw", "sensor_msgs/msg/Image")
    one_line_failure(run_cli(*base, "--input", bag, "--odom-topic", "/camera/camera_info"), "/camera/camera_info")
    one_line_failure(run_cli(*base, "--input", bag, "--camera-pitch", "-10"), "--camera-pitch needs --camera-height")
    one_line_failure(run_cli(*base, "--input", bag, "--camera-height", "-1"), "camera height")
    truncated = tmp_path / "truncated.mcap"
    data = storage_file(bag).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    one_line_failure(run_cli(*base, "--input", truncated), "truncated or corrupt")
    nan_bag = scene_bag(tmp_path / "nan", folder, StoragePlugin.MCAP, nan_at=5)
    one_line_failure(run_cli(*base, "--input", nan_bag, "--odom-topic", "/odom"), "not finite")
    wrong = scene_bag(tmp_path / "depth", folder, StoragePlugin.MCAP, encoding="16UC1")
    one_line_failure(run_cli(*base, "--input", wrong), "16UC1")
    one_line_failure(run_cli(*base, "--input", tmp_path / "missing.mcap"), "missing.mcap")
    one_line_failure(run_cli(*base, "--input", bag, "--no-visual-odometry", "--motion", tmp_path),
                     "--no-visual-odometry turns off")
    one_line_failure(run_cli(*base, "--input", bag, "--no-visual-odometry", "--no-room-axes"),
                     "--no-visual-odometry turns off")
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))  # never a half-written output


def test_bench_json_has_every_figure_for_both_backends():
    result = run_cli("bench", "--json", "--sizes", "8,16", "--repeats", "3", timeout=300, check=True)
    report = json.loads(result.stdout)
    for metric in ("keyframe_update_ms", "ego_pose_ms", "visual_ego_pose_ms", "layout_refresh_ms", "query_p50_ms",
                   "query_p95_ms"):
        for backend in ("torch", "onnx"):
            assert set(report[metric][backend]) == {"8", "16"}
            assert all(value > 0 for value in report[metric][backend].values())
    assert report["onnx_speedup"] > 0
    assert 20 < report["onnx_peak_rss_mb"] < 2000
