"""loc3r_node as `ros2 run` starts it (its installed executable, its own process), over real DDS."""

from __future__ import annotations

import ast
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, require_ros
from loc3r_core.geometry import invert_pose, make_pose
from loc3r_core.runtime.floor_scale import CameraMount, mount_pose
from loc3r_core.runtime.onnx_backend import OnnxBackend
from loc3r_core.runtime.scenario import scene_camera_mount, scene_frames
from loc3r_core.runtime.session import Session
from loc3r_core.world.scene_io import SceneFolder
from loc3r_ros.parameters import PARAMETERS, check, session_config
from ros_client import TIMEOUT, RosClient

pytestmark = pytest.mark.ros
NS = "/loc3r_test"
START_NS = 1_700_000_000 * 10**9  # a plausible wall-clock epoch for the recorded stamps


def node_executable() -> Path:
    prefix = Path(os.environ.get("LOC3R_ROS_PREFIX", ROOT / ".ros" / "install"))
    path = prefix / "lib" / "loc3r" / "loc3r_node"
    if not path.exists():
        pytest.fail(f"{path} is not installed: run `make setup`") if os.environ.get("LOC3R_REQUIRE_ROS") else \
            pytest.skip(f"{path} is not installed")
    return path


def start_node(*parameters: str, ns: str = NS) -> subprocess.Popen:
    """The node the way `ros2 run loc3r loc3r_node --ros-args ...` starts it (each test its own namespace)."""
    args = [str(node_executable()), "--ros-args", "-r", f"__ns:={ns}", "--params-file", str(ROOT / "config/loc3r.yaml"),
            "-p", "layout.rate:=10.0", "-p", "diagnostics.period:=0.25"]
    for parameter in parameters:
        args += ["-p", parameter]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_node(process: subprocess.Popen) -> float:
    """SIGINT, as Ctrl-C in `ros2 run`; returns how long it took to exit cleanly."""
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    took = time.monotonic() - started
    assert process.returncode == 0, f"exit {process.returncode}: {stderr}"
    assert "Traceback" not in stderr, stderr
    return took


@contextmanager
def node_and_probe(*parameters: str, ns: str = NS, process: subprocess.Popen | None = None,
                   wait_ready: bool = True) -> Iterator[tuple[subprocess.Popen, Probe]]:
    """A started node (or the one given) and a probe that sees it; the node never outlives the test."""
    require_ros()
    process, probe = process or start_node(*parameters, ns=ns), None
    try:
        probe = Probe(ns)
        if wait_ready:
            probe.wait_ready()
        yield process, probe
    except AssertionError as failure:
        if process.poll() is not None:  # the node died: its own words say why, not the probe's timeout
            raise AssertionError(f"{failure}; the node exited {process.returncode}: "
                                 f"{process.stderr.read()[-2000:]}") from failure
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if probe is not None:
            probe.close()


class Probe(RosClient):
    """Publishes what a robot's drivers would; records what the node publishes."""

    def __init__(self, ns: str = NS) -> None:
        super().__init__()
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from nav_msgs.msg import OccupancyGrid, Odometry
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from std_srvs.srv import Trigger
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import MarkerArray

        from loc3r.msg import SceneObjectArray
        from loc3r.srv import Localize, SpatialQuery

        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node = self.node
        self.image = node.create_publisher(Image, f"{ns}/image", 10)
        self.info = node.create_publisher(CameraInfo, f"{ns}/camera_info", 10)
        self.odom = node.create_publisher(Odometry, f"{ns}/odom", 10)
        self.got: dict[str, list] = {name: [] for name in ("layout", "markers", "objects", "pose", "tf", "diag")}
        self.hardware_id = f"{ns}/loc3r_node"
        for name, cls, topic, qos in (("layout", OccupancyGrid, f"{ns}/layout", latched),
                                      ("markers", MarkerArray, f"{ns}/markers", latched),
                                      ("objects", SceneObjectArray, f"{ns}/objects", latched),
                                      ("pose", PoseWithCovarianceStamped, f"{ns}/pose", 10),
                                      ("tf", TFMessage, "/tf", 100), ("diag", DiagnosticArray, "/diagnostics", 10)):
            node.create_subscription(cls, topic, lambda msg, name=name: self.got[name].append(msg), qos)
        self.query = node.create_client(SpatialQuery, f"{ns}/query")
        self.localize = node.create_client(Localize, f"{ns}/localize")
        self.reset = node.create_client(Trigger, f"{ns}/reset")
        self.types = {"Image": Image, "CameraInfo": CameraInfo, "Odometry": Odometry, "SpatialQuery": SpatialQuery,
                      "Localize": Localize, "Trigger": Trigger}

    def wait_ready(self) -> None:
        assert self.query.wait_for_service(timeout_sec=TIMEOUT), "the node's query service never appeared"
        assert self.spin_until(lambda: self.image.get_subscription_count() > 0), "the node never subscribed"

    def publish_until(self, publisher, msg, done, every: float = 0.3) -> bool:
        """Send msg, and again every `every` s, until done(): best effort may lose a message
        (before discovery settles, or under load), and a resend must not change the outcome."""
        sent_at = [float("-inf")]

        def sent_and_done() -> bool:
            if time.monotonic() - sent_at[0] > every:
                publisher.publish(msg)
                sent_at[0] = time.monotonic()
            return done()

        return self.spin_until(sent_and_done)

    def ask(self, question: str, situation: str = ""):
        return self.call(self.query, self.types["SpatialQuery"].Request(question=question, situation=situation))

    def diagnostics(self) -> dict[str, dict]:
        """The latest status per name: {name: {"level", "message", **values}}."""
        latest = {}
        for array in self.got["diag"]:
            for status in array.status:
                if status.hardware_id != self.hardware_id:
                    continue
                latest[status.name] = {"level": int.from_bytes(status.level, "little") if isinstance(
                    status.level, bytes) else int(status.level), "message": status.message,
                    **{kv.key: kv.value for kv in status.values}}
        return latest


def image_msg(probe: Probe, rgb: np.ndarray, stamp: int, encoding: str = "rgb8", data: bytes | None = None,
              height: int | None = None, width: int | None = None):
    from loc3r_ros.convert import time_msg

    msg = probe.types["Image"]()
    msg.header.stamp, msg.header.frame_id = time_msg(stamp), "camera"
    msg.height = rgb.shape[0] if height is None else height
    msg.width = rgb.shape[1] if width is None else width
    msg.encoding, msg.step = encoding, 3 * msg.width
    msg.data = rgb.tobytes() if data is None else data
    return msg


def odometry_msg(probe: Probe, pose: np.ndarray, stamp: int):
    from loc3r_ros.convert import quaternion_from_matrix, time_msg

    msg = probe.types["Odometry"]()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = time_msg(stamp), "odom", "base_link"
    msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = (float(v) for v in pose[:3, 3])
    msg.pose.pose.orientation = quaternion_from_matrix(pose[:3, :3])
    return msg


def camera_info_msg(probe: Probe, intrinsics, stamp: int):
    from loc3r_ros.convert import time_msg

    msg = probe.types["CameraInfo"]()
    msg.header.stamp, msg.header.frame_id = time_msg(stamp), "camera"
    msg.width, msg.height = intrinsics.width, intrinsics.height
    msg.k = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, intrinsics.fy, intrinsics.cy, 0.0, 0.0, 1.0]
    return msg


@pytest.fixture(scope="module")
def folder(world_by_kind) -> SceneFolder:
    return SceneFolder(sorted(world_by_kind["loop"].glob("scene_*"))[0])


@pytest.fixture(scope="module")
def streamed(folder):
    """A node that was asked a question before any frame, then saw the whole scene, frame by frame."""
    with node_and_probe() as (process, probe):
        early = probe.ask("What is in front of me?")
        for frame in scene_frames(folder, start_ns=START_NS):
            probe.info.publish(camera_info_msg(probe, frame.intrinsics, frame.stamp_ns))
            probe.odom.publish(odometry_msg(probe, frame.odometry, frame.stamp_ns))
            count = len(probe.got["pose"])
            probe.image.publish(image_msg(probe, frame.rgb, frame.stamp_ns))
            # one frame at a time, so none is dropped and the run is comparable with an offline session
            assert probe.spin_until(lambda c=count: len(probe.got["pose"]) > c), "no pose for a frame"
        probe.spin_until(lambda: probe.got["layout"] and probe.got["objects"] and probe.got["markers"])
        yield probe, early
        assert stop_node(process) < 2.0


def test_refuses_questions_before_any_frame(streamed):
    _, early = streamed
    assert not early.success and "no frames yet" in early.message


def test_layout_markers_objects_pose_and_tf_arrive_with_frames_and_stamps(streamed, folder):
    probe, _ = streamed
    stamps = [f.stamp_ns for f in scene_frames(folder, start_ns=START_NS)]
    poses = probe.got["pose"]
    from loc3r_ros.convert import stamp_ns

    assert [stamp_ns(p.header.stamp) for p in poses] == stamps  # one pose per frame, at the image's stamp
    assert {p.header.frame_id for p in poses} == {"map"}
    truth = [f.T_world_camera[:2, 3] for f in folder.scene.frames]
    errors = [math.hypot(p.pose.pose.position.x - t[0], p.pose.pose.position.y - t[1]) for p, t in zip(poses, truth,
                                                                                                          strict=True)]
    assert np.median(errors) < 0.3  # loc3r eval: 0.02 m with odometry
    layout = probe.got["layout"][-1]
    assert layout.header.frame_id == "map" and stamp_ns(layout.header.stamp) in stamps
    cells = np.asarray(layout.data)
    assert set(np.unique(cells)) <= {-1, 0, 100} and (cells == 0).sum() > 20 and (cells == 100).sum() > 0
    assert probe.got["markers"][-1].markers[0].action == 3  # DELETEALL first, then objects and the path
    assert probe.got["objects"][-1].header.frame_id == "map"
    transforms = [t for msg in probe.got["tf"] for t in msg.transforms]
    assert {(t.header.frame_id, t.child_frame_id) for t in transforms} == {("map", "odom")}  # REP-105 with odometry
    assert probe.diagnostics()["loc3r: inference"]["pose_prior"] == "wheel"
    first = [t for t in transforms if stamp_ns(t.header.stamp) >= stamps[0]]
    assert first, "map->odom dated at or after the images it comes from (future-dated by tf_tolerance)"


def test_offered_qos_is_what_the_reference_says(streamed):
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    probe, _ = streamed
    for topic in ("layout", "markers", "objects"):
        (info,) = probe.node.get_publishers_info_by_topic(f"{NS}/{topic}")
        assert info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL, topic
        assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic
    (image,) = probe.node.get_subscriptions_info_by_topic(f"{NS}/image")
    assert image.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT  # sensor data: never back-pressure a camera


def test_late_subscriber_gets_the_latched_layout(streamed):
    from nav_msgs.msg import OccupancyGrid
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    probe, _ = streamed
    late = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    probe.node.create_subscription(OccupancyGrid, f"{NS}/layout", late.append, qos)
    assert probe.spin_until(lambda: late), "transient local: a late subscriber still gets the last layout"


def test_answers_and_places_as_the_runtime_does(streamed, folder):
    """Same frames, same model: the node's answers are the offline session's, whose quality loc3r eval measures."""
    probe, _ = streamed
    offline = Session(OnnxBackend())
    for frame in scene_frames(folder, start_ns=START_NS):
        offline.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry)
    sources = set()
    asked = [(s, s.questions[0].question) for s in folder.situations[:3]]
    asked += [(folder.situations[0], q) for q in ("What is on my left?", "How many chairs are in front of me?")]
    for situation, question in asked:
        response = probe.ask(question, situation.text)
        expected = offline.ask(question, situation.text)
        assert response.success and response.answer == expected.text
        assert response.message == {"map": "answered from the map's objects", "model": "answered by the model"}[
            expected.source]
        sources.add(expected.source)
        assert response.confidence == pytest.approx(expected.confidence, abs=1e-4)
        assert response.asker_pose.pose.pose.position.x == pytest.approx(expected.asker.x, abs=1e-4)
        located = probe.call(probe.localize, probe.types["Localize"].Request(situation=situation.text))
        assert located.pose.header.frame_id == "map"
        assert located.pose.pose.pose.position.y == pytest.approx(offline.localize(situation.text).pose.y, abs=1e-4)
    assert sources == {"map", "model"}  # the parameter's default routes count and "what is on my left?" to the map


def test_bad_questions_get_success_false_and_the_node_lives(streamed):
    probe, _ = streamed
    for question, reason in (("", "empty"), ("x" * 100_000, "characters"), ("where is the d\ufffdor?", "UTF-8")):
        response = probe.ask(question)
        assert not response.success and reason in response.message
    assert probe.ask("How many chairs are there?").success


def test_faults_flood_and_services_while_streaming(folder):
    with node_and_probe(ns="/loc3r_faults") as (process, probe):
        frame = next(scene_frames(folder, start_ns=START_NS))
        rgb = frame.rgb
        bad = [image_msg(probe, rgb, START_NS, encoding="16UC1"),
               image_msg(probe, rgb, START_NS, height=0, width=0, data=b""),
               image_msg(probe, rgb, START_NS, data=rgb.tobytes()[:-7])]
        for count, msg in enumerate(bad, start=1):
            counted = lambda c=count: int(probe.diagnostics().get("loc3r: input", {}).get("rejected", 0)) >= c  # noqa: E731
            assert probe.publish_until(probe.image, msg, counted), f"the node never counted bad image {count}"
        nan_pose = frame.odometry.copy()
        nan_pose[0, 3] = float("nan")
        probe.odom.publish(odometry_msg(probe, nan_pose, START_NS))
        assert probe.spin_until(lambda: int(probe.diagnostics().get("loc3r: input", {}).get("rejected", 0)) >= 3
                                and int(probe.diagnostics()["loc3r: input"].get("odometry_rejected", 0)) >= 1)
        assert probe.diagnostics()["loc3r: input"]["level"] == 1  # WARN, and the reason
        # a flood: 200 images/s for 10 s, with questions in between
        frames = list(scene_frames(folder, start_ns=START_NS))
        started, sent, answered, rss = time.monotonic(), 0, 0, []
        while time.monotonic() - started < 10.0:
            f = frames[sent % len(frames)]
            probe.odom.publish(odometry_msg(probe, f.odometry, START_NS + sent * 5_000_000))
            probe.image.publish(image_msg(probe, f.rgb, START_NS + sent * 5_000_000))
            sent += 1
            probe.executor.spin_once(timeout_sec=0.0)
            target = started + sent / 200.0
            while time.monotonic() < target:
                probe.executor.spin_once(timeout_sec=max(0.0, target - time.monotonic()))
            if sent % 400 == 0:
                answered += probe.ask("How many chairs are there?").success
                rss.append(float(probe.diagnostics()["loc3r: inference"]["rss_mb"]))
        assert sent >= 1500 and answered >= 3
        probe.spin_until(lambda: False, timeout=1.0)
        input_status = probe.diagnostics()["loc3r: input"]
        assert int(input_status["processed"]) > 50 and int(input_status["dropped"]) > 0  # latest wins, counted
        memory = yaml.safe_load((ROOT / "config" / "loc3r.yaml").read_text())["/**"]["ros__parameters"]
        assert int(probe.diagnostics()["loc3r: inference"]["keyframes_in_memory"]) <= memory["memory.max_keyframes"]
        assert max(rss) - min(rss) < 100, f"RSS moved {min(rss)} -> {max(rss)} MB during the flood"
        reset = probe.call(probe.reset, probe.types["Trigger"].Request())
        assert reset.success
        assert not probe.ask("How many chairs are there?").success  # memory really cleared
        # an image long after the last odometry: its prior is read from the images by visual odometry
        count = len(probe.got["pose"])
        later = START_NS + 10**12
        assert probe.publish_until(probe.image, image_msg(probe, rgb, later), lambda: len(probe.got["pose"]) > count)
        assert probe.spin_until(lambda: probe.diagnostics()["loc3r: inference"].get("pose_prior") == "visual")
        assert process.poll() is None
        assert stop_node(process) < 2.0


def test_a_situation_the_model_cannot_place_is_refused(folder):
    with node_and_probe("localize.max_sigma:=0.05", ns="/loc3r_strict") as (process, probe):
        for frame in list(scene_frames(folder, start_ns=START_NS))[:3]:
            count = len(probe.got["pose"])
            assert probe.publish_until(probe.image, image_msg(probe, frame.rgb, frame.stamp_ns),
                                       lambda c=count: len(probe.got["pose"]) > c)
        situation = folder.situations[0].text
        response = probe.ask("What is in front of me?", situation)
        assert not response.success and "cannot place the situation" in response.message
        located = probe.call(probe.localize, probe.types["Localize"].Request(situation=situation))
        assert not located.success and "cannot place" in located.message
        assert probe.ask("How many chairs are there?").success  # no situation: nothing to place
        assert stop_node(process) < 2.0


def test_the_camera_mount_comes_from_tf_static_once_it_joins_the_images_frame(folder):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from loc3r_core.io import ros_messages as msgs
    from loc3r_ros.convert import message_from_dict

    truth = scene_camera_mount(folder)
    T_fp_camera = mount_pose(truth)
    T_fp_bl = make_pose(np.eye(3), np.array([0.0, 0.0, 0.1]))
    frames = list(scene_frames(folder, start_ns=START_NS))[:2]
    with node_and_probe(ns="/loc3r_mount") as (process, probe):
        static = probe.node.create_publisher(TFMessage, "/tf_static", QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))

        def mount_status() -> str:
            return probe.diagnostics().get("loc3r: inference", {}).get("camera_mount", "")

        def push(frame) -> None:
            count = len(probe.got["pose"])
            assert probe.publish_until(probe.image, image_msg(probe, frame.rgb, frame.stamp_ns),
                                       lambda: len(probe.got["pose"]) > count)

        push(frames[0])  # nothing on /tf_static yet: the model's own scale, and the node says why
        assert probe.spin_until(lambda: "no chain of static transforms from base_footprint" in mount_status())
        static.publish(message_from_dict(TFMessage, msgs.tf_message([  # as robot_state_publisher sends them
            msgs.transform_msg(T_fp_bl, "base_footprint", "base_link", START_NS),
            msgs.transform_msg(invert_pose(T_fp_bl) @ T_fp_camera, "base_link", "camera", START_NS)])))
        assert probe.spin_until(lambda: static.get_subscription_count() > 0)
        push(frames[1])
        assert probe.spin_until(lambda: "from /tf_static (base_footprint -> camera)" in mount_status()), mount_status()
        assert mount_status().startswith(f"{truth.height_m:.3f} m, pitch {truth.pitch_deg:+.1f} deg")
        assert stop_node(process) < 2.0


def test_missing_model_keeps_the_node_up_and_says_why(tmp_path):
    with node_and_probe(f"model.onnx_dir:={tmp_path / 'no-export'}", ns="/loc3r_nomodel") as (process, probe):
        response = probe.ask("How many chairs are there?")
        assert not response.success and "model not loaded" in response.message
        assert probe.spin_until(lambda: "loc3r: model" in probe.diagnostics())
        assert probe.diagnostics()["loc3r: model"]["level"] == 2  # ERROR
        assert stop_node(process) < 2.0


def test_invalid_parameters_stop_the_node_with_one_line():
    require_ros()
    process = start_node("grid.resolution:=-1.0")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2 and "grid.resolution must be in (0, 1] m" in stderr
    assert "Traceback" not in stderr
    process = start_node("grid.object_shadow_m:=1")  # an integer where rclpy types the parameter a double
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2 and "grid.object_shadow_m must be a number with a decimal point" in stderr
    assert "Traceback" not in stderr


# --- static checks of what cannot run here (no launch_ros, no RViz) ------------------------------


def test_parameter_file_sets_exactly_the_declared_parameters_with_valid_values():
    data = yaml.safe_load((ROOT / "config" / "loc3r.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMETERS}
    assert not check(values)
    assert check({"question.map_types": "count,colour"}) and not check({"question.map_types": ""})
    for p in PARAMETERS:
        assert type(values[p.name]) is type(p.default), p.name  # a float must stay a float for rclpy
    assert session_config(values).camera_mount is None  # no mount unless the robot's is given
    mounted = session_config({**values, "camera.height_m": 1.2, "camera.pitch_deg": -10.0}).camera_mount
    assert mounted == CameraMount(1.2, -10.0)
    assert check({"camera.height_m": -1.0}) and check({"camera.pitch_deg": 90.0})


def test_launch_file_names_an_installed_executable_existing_files_and_defaulted_arguments():
    tree = ast.parse((ROOT / "launch" / "loc3r.launch.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]

    def keywords(call: ast.Call) -> dict:
        return {k.arg: k.value for k in call.keywords}

    declared = {c.args[0].value: keywords(c) for c in calls if getattr(c.func, "id", "") == "DeclareLaunchArgument"}
    assert {"image", "camera_info", "odom", "params_file", "model", "rviz"} <= set(declared)
    assert all("default_value" in k for k in declared.values()), "every argument has a default"
    nodes = [keywords(c) for c in calls if getattr(c.func, "id", "") == "Node"]
    executables = {k["executable"].value for k in nodes}
    assert "loc3r_node" in executables and (ROOT / "scripts" / "loc3r_node").stat().st_mode & 0o111
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"loc3r.yaml", "loc3r.rviz"} <= strings
    assert (ROOT / "config" / "loc3r.yaml").exists() and (ROOT / "rviz" / "loc3r.rviz").exists()


def test_rviz_config_shows_the_nodes_topics():
    config = yaml.safe_load((ROOT / "rviz" / "loc3r.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if "Topic" in d}
    assert {"/loc3r/layout", "/loc3r/markers", "/loc3r/pose"} <= topics
    assert {d["Class"] for d in displays} >= {"rviz_default_plugins/Map", "rviz_default_plugins/TF"}
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "map"


def test_lifecycle_variant_loads_in_configure_and_listens_only_while_active(folder):
    require_ros()
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    executable = node_executable().with_name("loc3r_lifecycle_node")
    ns = "/loc3r_managed"
    process = subprocess.Popen([str(executable), "--ros-args", "-r", f"__ns:={ns}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with node_and_probe(ns=ns, process=process, wait_ready=False) as (process, probe):
        change = probe.node.create_client(ChangeState, f"{ns}/loc3r_node/change_state")
        get = probe.node.create_client(GetState, f"{ns}/loc3r_node/get_state")

        def transition(transition_id: int) -> None:
            request = ChangeState.Request(transition=Transition(id=transition_id))
            assert probe.call(change, request, resend_after=TIMEOUT).success  # a transition is not idempotent

        def state() -> str:
            return probe.call(get, GetState.Request()).current_state.label

        assert state() == "unconfigured"
        assert not probe.query.wait_for_service(timeout_sec=0.5)  # nothing served before configure
        transition(Transition.TRANSITION_CONFIGURE)
        assert state() == "inactive" and probe.query.wait_for_service(timeout_sec=TIMEOUT)
        assert probe.image.get_subscription_count() == 0  # no camera input while inactive
        transition(Transition.TRANSITION_ACTIVATE)
        assert probe.spin_until(lambda: probe.image.get_subscription_count() > 0)
        frame = next(scene_frames(folder, start_ns=START_NS))
        probe.image.publish(image_msg(probe, frame.rgb, frame.stamp_ns))
        assert probe.spin_until(lambda: probe.got["pose"]), "an active node processes frames"
        assert probe.ask("How many chairs are there?").success
        transition(Transition.TRANSITION_DEACTIVATE)
        assert probe.spin_until(lambda: probe.image.get_subscription_count() == 0)
        assert state() == "inactive"
        assert stop_node(process) < 2.0
