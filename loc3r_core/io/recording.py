"""Read a recording (a ROS 2 bag or a video file) as a stream of InputFrames.

Bags (a folder with metadata.yaml and .db3/.mcap storage, or a bare .mcap/.db3 file) are read
with `rosbags`, messages in bag (receive) time order, one at a time: nothing loads the whole bag.
Videos are decoded with PyAV.

What a frame carries:
- stamp_ns: the image's header stamp (the bag receive time where the header stamp is zero);
  for a video, the frame's presentation time (pts x time base) in ns from the start of the file.
- intrinsics: from the latest CameraInfo received before the image (None before the first one,
  or while K is all zeros, i.e. uncalibrated); scaled if the CameraInfo's size differs from the
  image's (a resized stream).
- odometry: T_odom_base at the image stamp, interpolated between the two odometry messages whose
  header stamps bracket it (linear in position, slerp in rotation). Frames wait (at most
  MAX_PENDING_FRAMES of them) for the odometry message after them. Where no bracketing pair exists,
  or the pair is more than MAX_ODOMETRY_GAP_NS apart, the nearest pose is used if within
  ODOMETRY_TOLERANCE_NS of the image, else None.
Errors are DataErrors with one line a user can act on.
"""

from __future__ import annotations

import sqlite3
import struct
from collections import deque
from collections.abc import Iterator
from contextlib import closing
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from loc3r_core.errors import DataError
from loc3r_core.geometry import Intrinsics
from loc3r_core.io.images import decode_compressed_image, decode_raw_image
from loc3r_core.io.odometry import OdometryHistory, format_stamp
from loc3r_core.static_transforms import StaticTransforms
from loc3r_core.types import InputFrame

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")
BAG_FILE_SUFFIXES = (".mcap", ".db3")
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
TF_TYPE = "tf2_msgs/msg/TFMessage"
TF_STATIC_TOPIC = "/tf_static"

MAX_PENDING_FRAMES = 32  # frames held back waiting for the next odometry message (bounds memory)


# ---------------------------------------------------------------------------------------------
# What the path is


def _kind(path: Path) -> str:
    """"bag" or "video"; DataError if neither."""
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return "bag"
        if any(p.suffix in BAG_FILE_SUFFIXES for p in path.iterdir()):
            raise DataError(f"{path}: the bag is truncated or corrupt (metadata.yaml is missing; "
                            "give its .mcap or .db3 file directly)")
    else:
        suffix = path.suffix.lower()
        if suffix in BAG_FILE_SUFFIXES or path.name == "metadata.yaml":
            return "bag"
        if suffix in VIDEO_SUFFIXES:
            return "video"
        if suffix == ".bag":
            raise DataError(f"{path} is a ROS 1 bag; convert it to ROS 2 first (rosbags-convert --src {path})")
    raise DataError(f"{path} is neither a ROS 2 bag (a folder with metadata.yaml, or a .mcap/.db3 file) "
                    f"nor a video ({', '.join(VIDEO_SUFFIXES)})")


def read_recording(path: Path, image_topic: str | None, camera_info_topic: str | None = None,
                   odom_topic: str | None = None, max_frames: int | None = None) -> Iterator[InputFrame]:
    """The recording's images in order, as InputFrames (see the module docstring for what they carry).

    image_topic None picks the bag's only Image/CompressedImage topic. camera_info_topic and
    odom_topic None leave intrinsics / odometry None. Videos ignore all three topics. A path that
    is missing or neither a bag nor a video fails here; what is inside fails on the first next().
    """
    path = Path(path)
    if _kind(path) == "video":
        frames = _video_frames(path)
    else:
        frames = _bag_frames(path, image_topic, camera_info_topic, odom_topic)
    return _first(frames, max_frames)


def is_bag(path: Path) -> bool:
    """Whether the path is a ROS 2 bag (False: a video); DataError if neither."""
    return _kind(Path(path)) == "bag"


def read_static_transforms(path: Path) -> tuple[StaticTransforms, list[str]]:
    """Every transform on the bag's /tf_static (the robot's fixed frames, its camera mount among them),
    and one line per transform left out as invalid; empty where the bag has no /tf_static."""
    path = Path(path)
    transforms, problems = StaticTransforms(), []
    reader = _open_bag(path)
    try:
        topics = _topics(reader)
        if TF_STATIC_TOPIC not in topics:
            return transforms, problems
        _check_topic(path, topics, TF_STATIC_TOPIC, (TF_TYPE,))
        connections = [conn for conn in reader.connections if conn.topic == TF_STATIC_TOPIC]
        for conn, log_ns, raw in _messages(path, reader, connections):
            problems += transforms.add_message(_deserialize(path, reader, raw, conn.msgtype, conn.topic, log_ns))
    finally:
        reader.close()
    return transforms, problems


def _first(frames: Iterator[InputFrame], max_frames: int | None) -> Iterator[InputFrame]:
    """At most max_frames of frames, closing the bag / container as soon as they are out."""
    with closing(frames):
        if max_frames is not None and max_frames <= 0:
            return
        for count, frame in enumerate(frames, start=1):
            yield frame
            if max_frames is not None and count >= max_frames:
                return


def list_topics(path: Path) -> dict[str, str]:
    """topic -> message type of a bag ("a | b" where a topic has several types)."""
    path = Path(path)
    if _kind(path) != "bag":
        raise DataError(f"{path} is a video; it has no topics")
    reader = _open_bag(path)
    try:
        return _topics(reader)
    finally:
        reader.close()


# ---------------------------------------------------------------------------------------------
# Bags


# rosbags is imported where used: importing this module (e.g. for videos) stays cheap.
@lru_cache(maxsize=1)
def _ros2_typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


@lru_cache(maxsize=1)
def _corruption_errors() -> tuple[type[BaseException], ...]:
    """What rosbags and its storage backends raise on damaged files (their own errors do not cover all)."""
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError
    from rosbags.serde import SerdeError
    from rosbags.typesys import TypesysError

    errors: list[type[BaseException]] = [
        AnyReaderError, ReaderError, SerdeError, TypesysError, struct.error, sqlite3.Error, EOFError,
        # what a damaged length or offset field turns into inside the readers' parsing
        KeyError, IndexError, ValueError, TypeError, OverflowError, AssertionError,
    ]
    try:
        import apsw  # rosbags' sqlite driver

        errors.append(apsw.Error)
    except ImportError:
        pass
    try:
        import zstandard  # compressed bags and mcap chunks

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def _corrupt(path: Path, exc: BaseException) -> DataError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return DataError(f"{path}: the bag is truncated or corrupt ({reason})")


def _open_bag(path: Path):
    """An open rosbags AnyReader; DataError if it cannot be opened."""
    from rosbags.highlevel import AnyReader

    bag = path.parent if path.name == "metadata.yaml" else path
    try:
        reader = AnyReader([bag], default_typestore=_ros2_typestore())
        reader.open()
    except FileNotFoundError as exc:  # rosbags says so for a missing metadata.yaml or storage file
        raise _corrupt(path, exc) from exc
    except PermissionError as exc:
        raise DataError(f"{path}: cannot read the bag ({exc.strerror})") from exc
    except _corruption_errors() as exc:
        raise _corrupt(path, exc) from exc
    return reader


def _topics(reader: object) -> dict[str, str]:
    types: dict[str, list[str]] = {}
    for conn in reader.connections:
        if conn.msgtype not in types.setdefault(conn.topic, []):
            types[conn.topic].append(conn.msgtype)
    return {topic: " | ".join(names) for topic, names in sorted(types.items())}


def _describe(topics: dict[str, str]) -> str:
    return ", ".join(f"{topic} ({msgtype})" for topic, msgtype in topics.items()) or "none"


def _pick_image_topic(path: Path, topics: dict[str, str], image_topic: str | None) -> str:
    if image_topic is None:
        images = [topic for topic, msgtype in topics.items() if msgtype in IMAGE_TYPES]
        if len(images) == 1:
            return images[0]
        if not images:
            raise DataError(f"{path} has no Image or CompressedImage topic; topics: {_describe(topics)}")
        raise DataError(f"{path} has several image topics, choose one: {', '.join(images)}")
    _check_topic(path, topics, image_topic, IMAGE_TYPES)
    return image_topic


def _check_topic(path: Path, topics: dict[str, str], topic: str, expected: tuple[str, ...]) -> None:
    if topic not in topics:
        raise DataError(f"{path} has no topic {topic}; topics: {_describe(topics)}")
    if topics[topic] not in expected:
        raise DataError(f"{path}: topic {topic} is {topics[topic]}, expected {' or '.join(expected)}")


def _messages(path: Path, reader: object, connections: list) -> Iterator[tuple[object, int, bytes]]:
    """(connection, receive time ns, raw CDR) in time order; storage faults become DataError.

    Only the reader's own step sits inside the try, so a bug of ours is never called corruption.
    """
    errors = _corruption_errors()
    stream = reader.messages(connections=connections)
    while True:
        try:
            item = next(stream)
        except StopIteration:
            return
        except errors as exc:
            raise _corrupt(path, exc) from exc
        yield item


def _deserialize(path: Path, reader: object, raw: bytes, msgtype: str, topic: str, log_ns: int) -> object:
    # A bag may embed definitions for some types only; the ROS 2 store knows the rest.
    store = reader.typestore if msgtype in reader.typestore.fielddefs else _ros2_typestore()
    try:
        return store.deserialize_cdr(raw, msgtype)
    except _corruption_errors() as exc:
        raise DataError(f"{path}: message on {topic} at {format_stamp(log_ns)} cannot be decoded; the bag is "
                        f"truncated or corrupt ({exc})") from exc


def _stamp_ns(header: object, log_ns: int) -> int:
    stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return stamp if stamp else log_ns  # publishers that leave the stamp empty: the receive time is all we have


def _bag_frames(path: Path, image_topic: str | None, camera_info_topic: str | None,
                odom_topic: str | None) -> Iterator[InputFrame]:
    reader = _open_bag(path)
    try:
        topics = _topics(reader)
        image_topic = _pick_image_topic(path, topics, image_topic)
        if camera_info_topic is not None:
            _check_topic(path, topics, camera_info_topic, (CAMERA_INFO_TYPE,))
        if odom_topic is not None:
            _check_topic(path, topics, odom_topic, (ODOMETRY_TYPE,))
        wanted = {image_topic, camera_info_topic, odom_topic} - {None}
        connections = [conn for conn in reader.connections if conn.topic in wanted]
        matcher = _OdometryMatcher(path, odom_topic) if odom_topic is not None else None
        camera_info = None
        for conn, log_ns, raw in _messages(path, reader, connections):
            msg = _deserialize(path, reader, raw, conn.msgtype, conn.topic, log_ns)
            if conn.topic == camera_info_topic:
                camera_info = msg
            elif conn.topic == odom_topic:
                yield from matcher.add_odometry(_stamp_ns(msg.header, log_ns), msg.pose.pose)
            else:
                frame = _image_frame(path, conn.topic, conn.msgtype, msg, log_ns, camera_info)
                if matcher is None:
                    yield frame
                else:
                    yield from matcher.add_frame(frame)
        if matcher is not None:
            yield from matcher.flush()
    finally:
        reader.close()


def _image_frame(path: Path, topic: str, msgtype: str, msg: object, log_ns: int,
                 camera_info: object | None) -> InputFrame:
    stamp = _stamp_ns(msg.header, log_ns)
    try:
        if msgtype == IMAGE_TYPE:
            rgb = decode_raw_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)
        else:
            rgb = decode_compressed_image(msg.format, msg.data)
    except DataError as exc:
        raise DataError(f"{path}: image on {topic} at {format_stamp(stamp)}: {exc}") from exc
    intrinsics = _intrinsics(camera_info, rgb.shape[1], rgb.shape[0]) if camera_info is not None else None
    return InputFrame(stamp_ns=stamp, rgb=rgb, intrinsics=intrinsics, odometry=None,
                      frame_id=msg.header.frame_id or "camera")


def _intrinsics(info: object, width: int, height: int) -> Intrinsics | None:
    """K of a CameraInfo for an image of width x height; None while uncalibrated (K all zeros)."""
    k = np.asarray(info.k, dtype=np.float64)
    if not np.all(np.isfinite(k)) or k[0] <= 0 or k[4] <= 0:
        return None
    # CameraInfo of the full sensor with a resized image stream: scale K to the image.
    sx = width / info.width if info.width else 1.0
    sy = height / info.height if info.height else 1.0
    return Intrinsics(fx=float(k[0]) * sx, fy=float(k[4]) * sy, cx=float(k[2]) * sx, cy=float(k[5]) * sy,
                      width=width, height=height)


# ---------------------------------------------------------------------------------------------
# Odometry


class _OdometryMatcher:
    """Gives frames their odometry pose at their stamp, holding them until the pose after them arrives."""

    def __init__(self, path: Path, topic: str) -> None:
        self.history = OdometryHistory(f"{path}: odometry on {topic}")
        self.pending: deque[InputFrame] = deque()

    def add_odometry(self, stamp: int, pose: object) -> Iterator[InputFrame]:
        p, o = pose.position, pose.orientation
        self.history.add(stamp, np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w]))
        return self._release(self.history.latest())

    def add_frame(self, frame: InputFrame) -> Iterator[InputFrame]:
        self.pending.append(frame)
        return self._release(self.history.latest())

    def flush(self) -> Iterator[InputFrame]:
        while self.pending:
            yield self._matched(self.pending.popleft())

    def _release(self, latest: int | None) -> Iterator[InputFrame]:
        """Frames at the front that the poses now cover, or that waited too long (order is kept)."""
        released = []
        while self.pending and ((latest is not None and self.pending[0].stamp_ns <= latest)
                                or len(self.pending) > MAX_PENDING_FRAMES):
            released.append(self._matched(self.pending.popleft()))
        return iter(released)

    def _matched(self, frame: InputFrame) -> InputFrame:
        pose = self.history.pose_at(frame.stamp_ns)
        return frame if pose is None else InputFrame(frame.stamp_ns, frame.rgb, frame.intrinsics, pose,
                                                     frame.frame_id)


# ---------------------------------------------------------------------------------------------
# Video


def _video_frames(path: Path) -> Iterator[InputFrame]:
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"{path} cannot be decoded as a video ({exc})") from exc
    with container:
        if not container.streams.video:
            raise DataError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or Fraction(30)  # only for frames without a pts
        decoded = container.decode(stream)
        index = 0
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except (av.FFmpegError, ValueError) as exc:
                raise DataError(f"{path}: video frame {index} cannot be decoded ({exc})") from exc
            if frame.pts is not None and frame.time_base is not None:
                stamp = round(Fraction(frame.pts) * frame.time_base * 1_000_000_000)
            else:
                stamp = round(Fraction(index) / rate * 1_000_000_000)
            yield InputFrame(stamp_ns=stamp, rgb=frame.to_ndarray(format="rgb24"), frame_id="camera")
            index += 1
        if index == 0:
            raise DataError(f"{path} has no decodable video frames")
