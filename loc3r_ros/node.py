"""loc3r_node (and its lifecycle variant): camera in; layout, pose, TF and answers out.

Thin: the runtime does the work.

Threads: subscriptions only keep the newest image (latest wins; a frame replaced before the
worker took it counts as dropped), a worker thread runs the model on it, services and timers
have their own callback groups under a MultiThreadedExecutor. One lock guards the session,
so a question waits at most one frame's inference (a few ms), never a queue.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque

import numpy as np
import psutil
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from loc3r.msg import SceneObjectArray
from loc3r.srv import Localize, SpatialQuery
from loc3r_core.errors import Loc3rError
from loc3r_core.geometry import Intrinsics
from loc3r_core.io import ros_messages as msgs
from loc3r_core.io.images import decode_raw_image
from loc3r_core.io.odometry import OdometryHistory
from loc3r_core.runtime.floor_scale import find_camera_mount
from loc3r_core.runtime.frames import tf_chain
from loc3r_core.runtime.open import open_backend
from loc3r_core.runtime.session import Session
from loc3r_core.runtime.visual_odometry import open_visual_odometry
from loc3r_core.static_transforms import StaticTransforms
from loc3r_ros.convert import map_objects_msg, message_from_dict, pose_with_covariance, stamp_ns, time_msg
from loc3r_ros.interrupt import init_stopping_on_sigint, spin_until_stopped
from loc3r_ros.parameters import PARAMETERS, check, session_config, type_words

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# tf2's /tf_static: every publisher's latest message, however late the node joins
TF_STATIC = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class StartupError(Exception):
    """Parameters the node cannot run with: reported in one line, the process exits 2."""


class Loc3rBehaviour:
    """Everything loc3r_node does, in the phases a lifecycle node separates:
    declare (parameters) -> configure (model, publishers, services) -> activate (subscriptions,
    timers, the worker) -> deactivate (inputs off). Mixed into a Node or a LifecycleNode."""

    def declare(self) -> None:
        self.values, problems = {}, []
        for p in PARAMETERS:
            try:
                self.values[p.name] = self.declare_parameter(
                    p.name, p.default, ParameterDescriptor(description=p.description, read_only=True)).value
            except InvalidParameterTypeException:  # rclpy types a parameter by its default: 1 is not 1.0
                problems.append(f"{p.name} must be {type_words(p.default)}")
        problems += check(self.values)
        if problems:
            raise StartupError("; ".join(problems))
        self.frames = {key: self.values[f"frames.{key}"] for key in ("map", "odom", "base")}
        self.session_lock = threading.Lock()
        self.session: Session | None = None
        self.model_error = "not configured"
        self.stats = {"received": 0, "processed": 0, "dropped": 0, "rejected": 0, "odometry_rejected": 0}
        self.last_rejection = ""
        self.arrivals: deque[float] = deque(maxlen=200)  # receive times, for the input rate
        self.latencies: deque[float] = deque(maxlen=200)  # seconds per processed frame
        self.last_prior = "none"  # session.PRIORS: where the last frame's pose prior came from
        self.pending: Image | None = None
        self.wake = threading.Condition()
        self.stopping = False
        self.intrinsics = self._default_intrinsics()
        self.warned_no_intrinsics = False
        self.odometry = OdometryHistory("odometry on odom")
        self.odometry_lock = threading.Condition()  # notified on each odometry message
        self.latest_map_tf: list[tuple[str, str, np.ndarray]] = []
        self.layout_version = self.published_version = 0
        self.inputs: list = []  # subscriptions and timers that activate creates and deactivate destroys
        self.worker: threading.Thread | None = None
        # the camera's mount: from the parameters, else looked up in /tf_static for the images' frame
        self.static_tf = StaticTransforms()
        self.static_tf_lock = threading.Lock()
        self.static_tf_version = 0  # bumped by every /tf_static message: a failed lookup is tried again
        self.mount_tried: tuple[str, int] | None = None  # (image frame, static_tf_version) last looked up
        self.mount_status = ("from the parameters" if self.values["camera.height_m"] > 0 else
                             "none: camera.height_m is 0 and camera.mount_from_tf is off"
                             if not self.values["camera.mount_from_tf"] else "none: no image yet")

    def configure(self) -> None:
        self._load_model()
        services = MutuallyExclusiveCallbackGroup()
        self.layout_pub = self.create_publisher(OccupancyGrid, "layout", LATCHED)
        self.markers_pub = self.create_publisher(MarkerArray, "markers", LATCHED)
        self.objects_pub = self.create_publisher(SceneObjectArray, "objects", LATCHED)
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, "pose", RELIABLE)
        self.tf_pub = self.create_publisher(TFMessage, "/tf", 100)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.loc3r_services = [self.create_service(SpatialQuery, "query", self.on_query, callback_group=services),
                         self.create_service(Localize, "localize", self.on_localize, callback_group=services),
                         self.create_service(Trigger, "reset", self.on_reset, callback_group=services)]

    def activate(self) -> None:
        inputs, timers = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        image_qos = qos_profile_sensor_data if self.values["qos.image"] == "sensor_data" else \
            QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.inputs = [
            self.create_subscription(Image, "image", self.on_image, image_qos, callback_group=inputs),
            self.create_subscription(CameraInfo, "camera_info", self.on_camera_info, RELIABLE, callback_group=inputs),
            self.create_subscription(Odometry, "odom", self.on_odometry, qos_profile_sensor_data,
                                     callback_group=inputs),
            self.create_timer(1.0 / self.values["layout.rate"], self.publish_layout, callback_group=timers),
            *([self.create_subscription(TFMessage, "/tf_static", self.on_tf_static, TF_STATIC, callback_group=inputs)]
              if self._mount_from_tf() else []),
            self.create_timer(self.values["diagnostics.period"], self.publish_diagnostics, callback_group=timers),
        ]
        if self.values["publish_tf"]:
            self.inputs.append(self.create_timer(1.0 / self.values["tf_rate"], self.republish_map_tf,
                                                 callback_group=timers))
        self.stopping = False
        self.worker = threading.Thread(target=self._work, name="loc3r-inference", daemon=True)
        self.worker.start()
        self.get_logger().info(f"loc3r_node active: {self.model_status()}; listening on "
                               f"{self.resolve_topic_name('image')}")

    def deactivate(self) -> None:
        for entity in self.inputs:
            if hasattr(entity, "cancel"):
                entity.cancel()
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self.inputs = []
        self.stop()

    # --- model --------------------------------------------------------------------------------

    def _load_model(self) -> None:
        v = self.values
        self.model_error = ""
        try:
            backend = open_backend(v["model.backend"], v["model.checkpoint"] or None, v["model.onnx_dir"] or None,
                                   v["model.provider"])
            visual = (open_visual_odometry(v["odometry.motion_dir"] or None, v["odometry.room_axes"])
                      if v["odometry.visual"] else None)
            self.session = Session(backend, session_config(v), visual)
        except (Loc3rError, ValueError) as exc:  # the node stays up and says why on /diagnostics and services
            self.model_error = str(exc)
            self.get_logger().error(f"model not loaded: {exc}")

    def model_status(self) -> str:
        if self.session is None:
            return f"model not loaded: {self.model_error}"
        return f"{self.session.backend.name} backend, {self.session.spec.checkpoint_sha256[:12]}"

    def _default_intrinsics(self) -> Intrinsics | None:
        fx, fy, cx, cy = (self.values[f"camera.{k}"] for k in ("fx", "fy", "cx", "cy"))
        if fx > 0 and fy > 0:
            return Intrinsics(fx, fy, cx, cy, round(2 * cx), round(2 * cy))
        return None

    # --- inputs (keep the newest; never run the model here) --------------------------------------

    def on_image(self, msg: Image) -> None:
        self.arrivals.append(time.monotonic())
        with self.wake:
            self.stats["received"] += 1
            if self.pending is not None:
                self.stats["dropped"] += 1  # the worker was busy: the newer frame wins
            self.pending = msg
            self.wake.notify()

    def on_camera_info(self, msg: CameraInfo) -> None:
        k = np.asarray(msg.k, dtype=np.float64)
        if msg.width and msg.height and np.all(np.isfinite(k)) and k[0] > 0 and k[4] > 0:
            self.intrinsics = Intrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]), msg.width, msg.height)

    def on_odometry(self, msg: Odometry) -> None:
        p, o = msg.pose.pose.position, msg.pose.pose.orientation
        try:
            with self.odometry_lock:
                self.odometry.add(stamp_ns(msg.header.stamp), np.array([p.x, p.y, p.z]),
                                  np.array([o.x, o.y, o.z, o.w]))
                self.odometry_lock.notify_all()
        except Loc3rError as exc:
            self.stats["odometry_rejected"] += 1
            self._reject(str(exc))

    def on_tf_static(self, msg: TFMessage) -> None:
        with self.static_tf_lock:
            problems = self.static_tf.add_message(msg)
            self.static_tf_version += 1
        for problem in problems:
            self._reject(f"/tf_static: {problem}")

    def _mount_from_tf(self) -> bool:
        return self.values["camera.mount_from_tf"] and self.values["camera.height_m"] == 0.0

    def _look_up_mount(self, camera_frame: str) -> None:
        """The camera's mount from /tf_static, once per image frame and set of static transforms;
        once found it stays (a mount does not move; a reset keeps it)."""
        with self.static_tf_lock:
            key = (camera_frame, self.static_tf_version)
            if key == self.mount_tried:
                return
            self.mount_tried = key
            floor = self.values["camera.floor_frame"]
            try:
                mount = find_camera_mount(self.static_tf, floor, camera_frame)
            except ValueError as exc:
                self.mount_status = f"none: {exc}"
                return
        with self.session_lock:
            self.session.camera_mount = mount
        self.mount_status = f"from /tf_static ({floor} -> {camera_frame})"
        self.get_logger().info(f"camera mount from /tf_static: {mount.height_m:.3f} m above {floor}, pitch "
                               f"{mount.pitch_deg:+.1f} deg; each keyframe's floor now sets its map's scale")

    def _reject(self, reason: str) -> None:
        self.last_rejection = reason
        # warning(), not the deprecated warn(): warn's wrapper is the call site rclpy keys its log
        # filters by, so every warn() in the node would share one and clash (throttled or not)
        self.get_logger().warning(reason, throttle_duration_sec=5.0)

    # --- the worker -------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self.wake:
                while self.pending is None and not self.stopping:
                    self.wake.wait()
                if self.stopping:
                    return
                msg, self.pending = self.pending, None
            try:
                self._process(msg)
            except Loc3rError as exc:
                self.stats["rejected"] += 1
                self._reject(f"image rejected: {exc}")
            except Exception as exc:  # one bad frame must not kill the worker
                if not self.context.ok():  # shut down mid-frame: the publishers are gone, not the frame's fault
                    return
                self.stats["rejected"] += 1
                self._reject(f"image failed: {type(exc).__name__}: {exc}")

    def _process(self, msg: Image) -> None:
        if self.session is None:
            return
        rgb = decode_raw_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)
        stamp = stamp_ns(msg.header.stamp)
        if self.intrinsics is None and not self.warned_no_intrinsics:
            # a flag, not rclpy's once=True: rclpy refuses different log filters from one logger
            self.warned_no_intrinsics = True
            self.get_logger().warning(f"no camera_info on {self.resolve_topic_name('camera_info')} yet and no camera.* "
                                   "parameters: images are centre-cropped (the model itself needs no intrinsics)")
        if self.session.camera_mount is None and self._mount_from_tf():
            self._look_up_mount(msg.header.frame_id.lstrip("/") or "camera")
        odometry = self._odometry_at(stamp)
        started = time.perf_counter()
        with self.session_lock:
            estimate = self.session.push(rgb, stamp, self.intrinsics, odometry)
            if estimate.keyframe:
                self.layout_version += 1
        self.latencies.append(time.perf_counter() - started)
        self.stats["processed"] += 1
        self.last_prior = estimate.prior
        self.pose_pub.publish(pose_with_covariance(estimate.pose, self.frames["map"], msg.header.stamp))
        if self.values["publish_tf"]:
            self.latest_map_tf = tf_chain(estimate.pose, odometry, self.frames)
            dated = stamp + (int(self.values["tf_tolerance"] * 1e9) if odometry is not None else 0)
            self._send_tf(self.latest_map_tf, dated)
            if odometry is None:
                self.latest_map_tf = []  # map->base is a measurement of this instant: not re-sent later

    def _odometry_at(self, stamp: int) -> np.ndarray | None:
        """T_odom_base at the image's stamp; an image can overtake its odometry on another topic, so
        while odometry is published it waits up to odometry.wait for a pose at or after the stamp."""
        deadline = time.monotonic() + self.values["odometry.wait"]
        with self.odometry_lock:
            while (not self._odometry_reached(stamp) and time.monotonic() < deadline
                   and self.count_publishers("odom") > 0):
                self.odometry_lock.wait(timeout=deadline - time.monotonic())
            return self.odometry.pose_at(stamp)

    def _odometry_reached(self, stamp: int) -> bool:
        latest = self.odometry.latest()
        return latest is not None and latest >= stamp

    def _send_tf(self, chain: list[tuple[str, str, np.ndarray]], stamp: int) -> None:
        transforms = [msgs.transform_msg(pose, parent, child, stamp) for parent, child, pose in chain]
        self.tf_pub.publish(message_from_dict(TFMessage, msgs.tf_message(transforms)))

    # --- timers -----------------------------------------------------------------------------------

    def republish_map_tf(self) -> None:
        """map->odom again at now + tolerance: consumers keep a transform to 'now' between frames."""
        if self.latest_map_tf:
            now = self.get_clock().now().nanoseconds
            self._send_tf(self.latest_map_tf, now + int(self.values["tf_tolerance"] * 1e9))

    def publish_layout(self) -> None:
        if self.session is None or self.layout_version == self.published_version:
            return
        with self.session_lock:
            version = self.layout_version
            layout = self.session.layout()
            trajectory = self.session.trajectory_xy()
        stamp = time_msg(layout.stamp_ns)
        frame = self.frames["map"]
        self.layout_pub.publish(message_from_dict(OccupancyGrid, msgs.occupancy_grid_msg(layout, frame)))
        self.markers_pub.publish(message_from_dict(
            MarkerArray, msgs.marker_array_msg(layout.objects, trajectory, layout.stamp_ns, frame, walls=layout.walls)))
        self.objects_pub.publish(map_objects_msg(layout.objects, frame, stamp))
        self.published_version = version

    def publish_diagnostics(self) -> None:
        now = time.monotonic()
        recent = [t for t in self.arrivals if now - t <= 5.0]
        rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        latency = np.array(self.latencies) * 1e3 if self.latencies else np.zeros(1)
        with self.session_lock:
            memory = (len(self.session.memory), self.session.memory_tokens()) if self.session else (0, 0)
        rejected = self.stats["rejected"] + self.stats["odometry_rejected"]
        me = self.get_fully_qualified_name()  # hardware_id: which node, when several share /diagnostics
        statuses = [
            status("loc3r: model", DiagnosticStatus.OK if self.session else DiagnosticStatus.ERROR,
                   self.model_status(), {"backend": self.values["model.backend"],
                                         "provider": self.values["model.provider"]}, me),
            status("loc3r: input", DiagnosticStatus.WARN if rejected else DiagnosticStatus.OK,
                   self.last_rejection or "images arriving" if recent else "no images in the last 5 s",
                   {"rate_hz": f"{rate:.1f}", **{k: str(v) for k, v in self.stats.items()},
                    "camera_info": "received" if self.intrinsics else "none yet (the model does not need it)"}, me),
            status("loc3r: inference", DiagnosticStatus.OK, f"{np.mean(latency):.1f} ms per frame",
                   {"latency_mean_ms": f"{np.mean(latency):.2f}", "latency_max_ms": f"{np.max(latency):.2f}",
                    "keyframes_in_memory": str(memory[0]), "memory_tokens": str(memory[1]),
                    "pose_prior": self.last_prior, "camera_mount": self._mount_words(),
                    "rss_mb": f"{psutil.Process().memory_info().rss / 1e6:.0f}"}, me),
        ]
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def _mount_words(self) -> str:
        mount = self.session.camera_mount if self.session else None
        if mount is None:
            return self.mount_status
        return f"{mount.height_m:.3f} m, pitch {mount.pitch_deg:+.1f} deg, {self.mount_status}"

    # --- services ---------------------------------------------------------------------------------

    def _refuse(self, response: object, reason: str) -> object:
        response.success, response.message = False, reason
        return response

    def _text_problem(self, *texts: str) -> str | None:
        if self.session is None:
            return f"model not loaded: {self.model_error}"
        if any("\ufffd" in t for t in texts):  # rclpy turns invalid UTF-8 into U+FFFD
            return "the text is not valid UTF-8"
        return None

    def on_query(self, request: SpatialQuery.Request, response: SpatialQuery.Response) -> SpatialQuery.Response:
        problem = self._text_problem(request.question, request.situation)
        if problem:
            return self._refuse(response, problem)
        try:
            with self.session_lock:
                answer = self.session.ask(request.question, request.situation.strip() or None)
        except Loc3rError as exc:
            return self._refuse(response, str(exc))
        response.success = True
        response.message = "answered from the map's objects" if answer.source == "map" else "answered by the model"
        response.answer, response.confidence = answer.text, answer.confidence
        response.asker_pose = pose_with_covariance(answer.asker, self.frames["map"], self.get_clock().now().to_msg())
        return response

    def on_localize(self, request: Localize.Request, response: Localize.Response) -> Localize.Response:
        problem = self._text_problem(request.situation)
        if problem:
            return self._refuse(response, problem)
        try:
            with self.session_lock:
                found = self.session.localize(request.situation)
        except Loc3rError as exc:
            return self._refuse(response, str(exc))
        response.pose = pose_with_covariance(found.pose, self.frames["map"], self.get_clock().now().to_msg())
        response.success = found.placed
        response.message = "placed" if found.placed else \
            f"cannot place the situation (uncertainty {max(found.pose.sigma_x, found.pose.sigma_y):.1f} m)"
        return response

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.session is None:
            return self._refuse(response, f"model not loaded: {self.model_error}")
        with self.session_lock:
            self.session.reset()
            self.latest_map_tf = []
            self.layout_version += 1
        response.success, response.message = True, "memory, map and trajectory cleared"
        return response

    def stop(self) -> None:
        with self.wake:
            self.stopping = True
            self.pending = None
            self.wake.notify()
        if self.worker is not None:
            self.worker.join(timeout=1.0)
            self.worker = None


class Loc3rNode(Loc3rBehaviour, Node):
    """The plain node: configured and active from the start (a failed model load is reported, not fatal)."""

    def __init__(self, **kwargs: object) -> None:
        Node.__init__(self, "loc3r_node", **kwargs)
        self.declare()
        self.configure()
        self.activate()


class Loc3rLifecycleNode(Loc3rBehaviour, LifecycleNode):
    """The managed node: the model loads in configure, camera input flows only while active."""

    def __init__(self, **kwargs: object) -> None:
        LifecycleNode.__init__(self, "loc3r_node", **kwargs)
        self.declare()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.configure()
        return TransitionCallbackReturn.SUCCESS if self.session is not None else TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.activate()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for service in self.loc3r_services:
            self.destroy_service(service)
        for publisher in (self.layout_pub, self.markers_pub, self.objects_pub, self.pose_pub, self.tf_pub,
                          self.diagnostics_pub):
            self.destroy_publisher(publisher)
        with self.session_lock:
            self.session, self.model_error = None, "not configured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.deactivate()
        return TransitionCallbackReturn.SUCCESS


def status(name: str, level: bytes, message: str, values: dict[str, str], hardware_id: str) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def main(args: list[str] | None = None, lifecycle: bool = False) -> int:
    stop = init_stopping_on_sigint(args)
    try:
        node = Loc3rLifecycleNode() if lifecycle else Loc3rNode()
    except StartupError as exc:
        print(f"loc3r_node: invalid parameters: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        spin_until_stopped(executor, stop)
    except ExternalShutdownException:
        pass
    finally:
        node.stop()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
