"""loc3r's MCAP output read back by readers that share no code with the writer.

rclpy's own CDR deserializer (the rosidl-generated types a robot uses) and rosbags decode every
message; rosbags also reads the file as a rosbag2 bag with its QoS, as `ros2 bag play` does.
"""

from __future__ import annotations

import importlib
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from conftest import require_ros
from loc3r_core.geometry import make_pose, rot_z
from loc3r_core.io import ros_messages as msgs
from loc3r_core.io.mcap_writer import RosMcapWriter, default_qos, message_definition
from loc3r_core.quaternions import quaternion_from_matrix, quaternion_from_yaw, quaternion_matrix
from loc3r_core.types import FREE, OCCUPIED, UNKNOWN, Layout, MapObject, PlanarPose, WallSegment

T0 = 1_700_000_000_123_456_789  # ns; sec and nanosec both non-trivial
RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
OBJECTS = (MapObject(7, "chair", np.array([1.0, 2.0, 0.4]), np.array([0.5, 0.6, 0.8]), 0.3, 0.9),
           MapObject(9, "table", np.array([-1.0, 0.5, 0.35]), np.array([1.2, 0.8, 0.7]), -1.2, 0.4))
OCCUPANCY = np.array([[UNKNOWN, FREE, OCCUPIED], [FREE, FREE, UNKNOWN]], dtype=np.int8)
LAYOUT = Layout(occupancy=OCCUPANCY, labels=np.full(OCCUPANCY.shape, -1, dtype=np.int16), label_names=("floor",),
                resolution=0.25, origin=(-2.0, -1.5), objects=OBJECTS, stamp_ns=T0 + 2)
TRAJECTORY = np.array([[0.0, 0.0], [0.5, 0.1], [1.0, 0.3]])
WALLS = (WallSegment(np.array([-2.0, -1.0]), np.array([2.0, -1.0]), np.array([0.0, 1.0])),
         WallSegment(np.array([2.0, -1.0]), np.array([2.0, 3.0]), np.array([-1.0, 0.0])))
POSE = PlanarPose(x=1.5, y=-0.5, yaw=2.5, sigma_x=0.1, sigma_y=0.2, sigma_yaw=0.05)
T_MAP_BASE = make_pose(rot_z(2.5), np.array([1.5, -0.5, 0.0]))

# topic -> (type, dict, stamp): one of each message loc3r writes
MESSAGES = {
    "/camera/image_raw": ("sensor_msgs/msg/Image", msgs.image_msg(RGB, T0, "camera"), T0),
    "/loc3r/layout": ("nav_msgs/msg/OccupancyGrid", msgs.occupancy_grid_msg(LAYOUT, "map"), T0 + 2),
    "/loc3r/markers": ("visualization_msgs/msg/MarkerArray",
                       msgs.marker_array_msg(OBJECTS, TRAJECTORY, T0 + 2, "map", walls=WALLS), T0 + 2),
    "/tf": ("tf2_msgs/msg/TFMessage", msgs.tf_message([msgs.transform_msg(T_MAP_BASE, "map", "base_link", T0)]), T0),
    "/loc3r/pose": ("geometry_msgs/msg/PoseWithCovarianceStamped", msgs.pose_with_covariance_msg(POSE, T0, "map"), T0),
    "/loc3r/question": ("std_msgs/msg/String", msgs.string_msg("where is the chair?"), T0 + 3),
    "/loc3r/answer": ("std_msgs/msg/String", msgs.string_msg("behind you, 1.2 m"), T0 + 3),
}


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcap") / "run.mcap"
    with RosMcapWriter(path) as writer:
        for topic, (msgtype, message, stamp) in MESSAGES.items():
            writer.write(topic, msgtype, message, stamp)
    return path


def read_raw(path: Path) -> dict[str, tuple]:
    """topic -> (schema, channel, message) of the only message on each topic."""
    with path.open("rb") as f:
        return {channel.topic: (schema, channel, message)
                for schema, channel, message in make_reader(f).iter_messages()}


def ros_types() -> dict[str, type]:
    """The rclpy message classes, or skip (fail under LOC3R_REQUIRE_ROS) where ROS 2 is missing."""
    require_ros()
    try:
        importlib.import_module("tf2_msgs.msg")
    except ImportError as exc:
        if os.environ.get("LOC3R_REQUIRE_ROS"):
            pytest.fail(f"tf2_msgs is not importable ({exc}); run `make setup` and `. tools/env.sh`")
        pytest.skip(f"tf2_msgs is not importable ({exc})")
    return {msgtype: ros_class(msgtype) for msgtype, _, _ in MESSAGES.values()}


def ros_class(type_name: str) -> type:
    """"pkg/msg/Type" or "pkg/Type" -> the rosidl-generated Python class."""
    pkg, *_, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def to_ros(cls: type, fields: dict):
    """Build an rclpy message from a ros_messages dict (what the node will do); unknown fields raise."""
    msg, types = cls(), cls.get_fields_and_field_types()
    for name, value in fields.items():
        assert name in types, f"{cls.__name__} has no field {name}"
        nested = re.fullmatch(r"(?:sequence<)?(\w+/\w+)(?:, \d+)?>?(?:\[\d+\])?", types[name])
        if nested and isinstance(value, dict):
            value = to_ros(ros_class(nested[1]), value)
        elif nested and isinstance(value, list):
            value = [to_ros(ros_class(nested[1]), item) for item in value]
        setattr(msg, name, value)
    return msg


def deserialized(bag: Path) -> dict:
    from rclpy.serialization import deserialize_message

    types = ros_types()
    return {topic: deserialize_message(message.data, types[schema.name])
            for topic, (schema, _, message) in read_raw(bag).items()}


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


# --- the file as MCAP -----------------------------------------------------------------------


def test_profile_schemas_encodings_and_times(bag: Path):
    with bag.open("rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
    assert summary.statistics.message_count == len(MESSAGES)
    raw = read_raw(bag)
    assert set(raw) == set(MESSAGES)
    for topic, (schema, channel, message) in raw.items():
        msgtype, _, stamp = MESSAGES[topic]
        assert (schema.name, schema.encoding, channel.message_encoding) == (msgtype, "ros2msg", "cdr")
        assert message.log_time == message.publish_time == stamp
    image_schema = raw["/camera/image_raw"][0].data.decode()
    assert image_schema.startswith("std_msgs/Header header") and "MSG: builtin_interfaces/Time" in image_schema
    assert "MSG: geometry_msgs/TransformStamped" in raw["/tf"][0].data.decode()


def test_channels_offer_rosbag2_qos_and_the_map_is_latched(bag: Path):
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:  # rosbags parses offered_qos_profiles as rosbag2 does
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert set(qos) == set(MESSAGES)
    for topic, profiles in qos.items():
        assert len(profiles) == 1
        assert profiles[0].reliability.name == "RELIABLE"
        expected = "TRANSIENT_LOCAL" if topic in {"/loc3r/layout", "/loc3r/markers"} else "VOLATILE"
        assert profiles[0].durability.name == expected, topic


def test_rosbag2_metadata_record(bag: Path):
    from ruamel.yaml import YAML

    with bag.open("rb") as f:
        records = {m.name: m.metadata for m in make_reader(f).iter_metadata()}
    meta = YAML(typ="safe").load(records["rosbag2"]["serialized_metadata"])
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    assert meta["message_count"] == len(MESSAGES)
    assert meta["starting_time"]["nanoseconds_since_epoch"] == T0 and meta["duration"]["nanoseconds"] == 3
    assert meta["relative_file_paths"] == [bag.name] == [meta["files"][0]["path"]]
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert topics["/loc3r/layout"]["topic_metadata"]["offered_qos_profiles"][0]["durability"] == "transient_local"
    assert all(t["message_count"] == 1 and t["topic_metadata"]["serialization_format"] == "cdr"
               for t in topics.values())


def test_rosbags_decodes_every_message(bag: Path):
    from rosbags.rosbag2 import Reader

    from loc3r_core.io.mcap_writer import typestore

    with Reader(bag) as reader:
        decoded = {c.topic: typestore().deserialize_cdr(data, c.msgtype) for c, _, data in reader.messages()}
    assert bytes(decoded["/camera/image_raw"].data) == RGB.tobytes()
    assert decoded["/loc3r/layout"].data.tolist() == OCCUPANCY.ravel().tolist()
    assert decoded["/loc3r/answer"].data == "behind you, 1.2 m"
    assert decoded["/tf"].transforms[0].child_frame_id == "base_link"


# --- the messages, as rclpy reads them ------------------------------------------------------


def test_image_round_trips(bag: Path):
    image = deserialized(bag)["/camera/image_raw"]
    assert (image.height, image.width, image.encoding, image.step, image.is_bigendian) == (4, 5, "rgb8", 15, 0)
    assert np.array_equal(np.frombuffer(bytes(image.data), np.uint8).reshape(4, 5, 3), RGB)
    assert image.header.frame_id == "camera" and stamp_ns(image.header.stamp) == T0


def test_occupancy_grid_round_trips(bag: Path):
    grid = deserialized(bag)["/loc3r/layout"]
    info = grid.info
    assert (info.width, info.height, info.resolution) == (3, 2, 0.25)
    assert (info.origin.position.x, info.origin.position.y, info.origin.position.z) == (-2.0, -1.5, 0.0)
    assert info.origin.orientation.w == 1.0
    assert list(grid.data) == [-1, 0, 100, 0, 0, -1]
    assert stamp_ns(info.map_load_time) == stamp_ns(grid.header.stamp) == T0 + 2
    assert grid.header.frame_id == "map"


def test_markers_round_trip(bag: Path):
    from visualization_msgs.msg import Marker

    markers = deserialized(bag)["/loc3r/markers"].markers
    assert [m.action for m in markers[:4]] == [Marker.DELETEALL] * 4
    assert {m.ns for m in markers[:4]} == {"loc3r/objects", "loc3r/labels", "loc3r/trajectory", "loc3r/walls"}
    [walls] = [m for m in markers if m.type == Marker.LINE_LIST]
    assert walls.ns == "loc3r/walls"
    assert [(p.x, p.y, p.z) for p in walls.points] == [(-2.0, -1.0, 0.0), (2.0, -1.0, 0.0), (2.0, -1.0, 0.0),
                                                       (2.0, 3.0, 0.0)]  # one pair per wall, on the floor
    cubes = [m for m in markers if m.type == Marker.CUBE]
    texts = [m for m in markers if m.type == Marker.TEXT_VIEW_FACING]
    lines = [m for m in markers if m.type == Marker.LINE_STRIP]
    assert [c.id for c in cubes] == [7, 9] and [t.text for t in texts] == ["chair 90%", "table 40%"]
    chair = cubes[0]
    assert (chair.pose.position.x, chair.pose.position.y, chair.pose.position.z) == (1.0, 2.0, 0.4)
    assert (chair.scale.x, chair.scale.y, chair.scale.z) == (0.5, 0.6, 0.8)
    assert math.isclose(2 * math.atan2(chair.pose.orientation.z, chair.pose.orientation.w), 0.3)
    assert cubes[0].color.a > cubes[1].color.a  # more confident, more opaque
    assert texts[0].pose.position.z > chair.pose.position.z + 0.4
    assert len(lines) == 1 and [(p.x, p.y, p.z) for p in lines[0].points] == [(0, 0, 0), (0.5, 0.1, 0), (1, 0.3, 0)]
    assert all(m.header.frame_id == "map" and stamp_ns(m.header.stamp) == T0 + 2 for m in markers)
    assert all(m.pose.orientation.w == 1.0 for m in markers if m.type != Marker.CUBE)


def test_tf_round_trips(bag: Path):
    tf = deserialized(bag)["/tf"].transforms
    assert len(tf) == 1
    t = tf[0]
    assert (t.header.frame_id, t.child_frame_id, stamp_ns(t.header.stamp)) == ("map", "base_link", T0)
    assert (t.transform.translation.x, t.transform.translation.y, t.transform.translation.z) == (1.5, -0.5, 0.0)
    q = t.transform.rotation
    assert np.allclose([q.x, q.y, q.z, q.w], [0, 0, math.sin(1.25), math.cos(1.25)])


def test_pose_with_covariance_round_trips(bag: Path):
    pose = deserialized(bag)["/loc3r/pose"]
    p = pose.pose.pose
    assert (p.position.x, p.position.y, p.position.z) == (1.5, -0.5, 0.0)
    assert math.isclose(2 * math.atan2(p.orientation.z, p.orientation.w), 2.5)
    cov = np.asarray(pose.pose.covariance).reshape(6, 6)
    assert np.allclose(np.diag(cov), [0.01, 0.04, 0, 0, 0, 0.0025]) and np.count_nonzero(cov) == 3
    assert pose.header.frame_id == "map" and stamp_ns(pose.header.stamp) == T0


def test_question_and_answer_round_trip(bag: Path):
    messages = deserialized(bag)
    assert messages["/loc3r/question"].data == "where is the chair?"
    assert messages["/loc3r/answer"].data == "behind you, 1.2 m"


def test_the_dicts_build_the_same_rclpy_messages(bag: Path):
    """What the node publishes (dict -> rclpy) equals what the file holds (dict -> CDR -> rclpy).

    Both go through rclpy's CDR once, which rounds float32 fields (colours) the same way; the
    bytes themselves differ, as rclpy leaves alignment padding uninitialised.
    """
    from rclpy.serialization import deserialize_message, serialize_message

    types, messages = ros_types(), deserialized(bag)
    for topic, (msgtype, message, _) in MESSAGES.items():
        published = deserialize_message(serialize_message(to_ros(types[msgtype], message)), types[msgtype])
        assert published == messages[topic], topic


@pytest.mark.ros
def test_type_hashes_match_rclpy(bag: Path):
    """The channels' topic_type_hash is the RIHS01 hash rclpy's graph reports for the type."""
    import rclpy

    types = ros_types()
    with bag.open("rb") as f:
        hashes = {c.topic: c.metadata["topic_type_hash"] for c in make_reader(f).get_summary().channels.values()}
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("loc3r_hash_probe", context=context)
        for i, (topic, (msgtype, _, _)) in enumerate(MESSAGES.items()):
            node.create_publisher(types[msgtype], f"hash_probe_{i}", 1)
            (info,) = node.get_publishers_info_by_topic(f"/hash_probe_{i}")
            assert str(info.topic_type_hash) == hashes[topic] == message_definition(msgtype)[1], topic
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


# --- writing: all or nothing, and mistakes caught early -------------------------------------


def test_a_failure_leaves_no_file(tmp_path: Path):
    path = tmp_path / "out.mcap"
    with pytest.raises(RuntimeError, match="boom"), RosMcapWriter(path) as writer:
        writer.write("/loc3r/answer", "std_msgs/msg/String", msgs.string_msg("half"), T0)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_keeps_the_previous_file(tmp_path: Path):
    path = tmp_path / "out.mcap"
    with RosMcapWriter(path) as writer:
        writer.write("/loc3r/answer", "std_msgs/msg/String", msgs.string_msg("first"), T0)
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt), RosMcapWriter(path) as writer:
        writer.write("/loc3r/answer", "std_msgs/msg/String", msgs.string_msg("second"), T0)
        raise KeyboardInterrupt
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_mistakes_are_refused(tmp_path: Path):
    path = tmp_path / "out.mcap"
    with RosMcapWriter(path) as writer:
        with pytest.raises(ValueError, match=r"std_msgs/msg/Header: no field stamp\.secs"):
            writer.write("/x", "std_msgs/msg/Header", {"stamp": {"secs": 1}}, T0)
        with pytest.raises(ValueError, match="unknown ROS 2 message type"):
            writer.write("/x", "std_msgs/String", msgs.string_msg("a"), T0)
        writer.write("/x", "std_msgs/msg/String", msgs.string_msg("a"), T0)
        with pytest.raises(ValueError, match="carries std_msgs/msg/String"):
            writer.write("/x", "std_msgs/msg/Header", msgs.header(T0, "map"), T0)
        with pytest.raises(ValueError, match="latched"):
            writer.write("/x", "std_msgs/msg/String", msgs.string_msg("b"), T0, latched=True)
        with pytest.raises(ValueError, match="nanoseconds"):
            writer.write("/x", "std_msgs/msg/String", msgs.string_msg("b"), -1)
        writer.write("/static", "std_msgs/msg/String", msgs.string_msg("c"), T0, latched=True)
    with pytest.raises(RuntimeError, match="outside"):
        writer.write("/x", "std_msgs/msg/String", msgs.string_msg("late"), T0)
    assert read_raw(path).keys() == {"/x", "/static"}


def test_default_qos():
    assert default_qos("/tf_static", "tf2_msgs/msg/TFMessage").transient_local
    assert default_qos("/map", "nav_msgs/msg/OccupancyGrid").transient_local
    assert not default_qos("/tf", "tf2_msgs/msg/TFMessage").transient_local


# --- the message builders -------------------------------------------------------------------


def test_orientations_are_quaternion_messages():
    # The math is loc3r_core.quaternions' (test_quaternions.py); here, that the builders use it.
    q = msgs.quaternion_msg(np.array([0.0, 0.0, 0.5, 0.75**0.5]))
    assert list(q) == ["x", "y", "z", "w"] and all(type(v) is float for v in q.values())
    rng = np.random.default_rng(0)
    for _ in range(20):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        rotation *= np.sign(np.linalg.det(rotation))
        sent = msgs.transform_msg(make_pose(rotation, np.zeros(3)), "map", "camera", T0)["transform"]["rotation"]
        assert sent == msgs.quaternion_msg(quaternion_from_matrix(rotation)) and sent["w"] >= 0
        assert np.allclose(quaternion_matrix(list(sent.values())), rotation, atol=1e-9)
    pose = msgs.pose_with_covariance_msg(PlanarPose(1.0, 2.0, 0.7, 0.1, 0.1, 0.05), T0, "map")
    assert pose["pose"]["pose"]["orientation"] == msgs.quaternion_msg(quaternion_from_yaw(0.7))
    turned = msgs.transform_msg(make_pose(rot_z(0.7), np.zeros(3)), "map", "base_link", T0)["transform"]["rotation"]
    assert np.allclose(list(pose["pose"]["pose"]["orientation"].values()), list(turned.values()))
    bad = np.eye(4)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        msgs.transform_msg(bad, "map", "camera", T0)


def test_builders_details():
    assert msgs.time_msg(-1) == {"sec": -1, "nanosec": 999_999_999}
    assert msgs.time_msg(T0) == {"sec": 1_700_000_000, "nanosec": 123_456_789}
    assert msgs.label_color("chair") == msgs.label_color("chair")
    no_path = msgs.marker_array_msg([], np.zeros((1, 2)), T0, "map")["markers"]
    assert [m["action"] for m in no_path] == [msgs.DELETEALL] * 4  # no path, no walls: nothing but the clears
    path_3d = msgs.marker_array_msg([], np.ones((2, 3)), T0, "map")["markers"][-1]
    assert path_3d["points"][0] == {"x": 1.0, "y": 1.0, "z": 1.0}
    with pytest.raises(ValueError):
        msgs.image_msg(np.zeros((4, 5), np.uint8), T0, "camera")
    with pytest.raises(ValueError):
        msgs.occupancy_grid_msg(Layout(np.full((2, 2), 101, np.int8), np.zeros((2, 2), np.int16), (), 0.1, (0, 0)),
                                "map")
