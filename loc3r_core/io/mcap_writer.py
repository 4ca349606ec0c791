"""ROS 2 MCAP files of loc3r's results, for Foxglove and for `ros2 bag play`.

Messages are the plain dicts of loc3r_core.io.ros_messages, CDR-encoded by mcap_ros2 against
the full ROS 2 message definitions (with dependencies) from rosbags' type store, so no ROS
install is needed. On top of what mcap_ros2 writes (the "ros2" profile, ros2msg schemas, cdr
channels), each channel carries the rosbag2 channel metadata (offered QoS, type hash) and the
file ends with rosbag2's own "rosbag2" metadata record, as `ros2 bag record -s mcap` writes
them: rosbag2 replays each topic with its recorded QoS, so the map stays latched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mcap.records import Schema
from mcap_ros2.writer import Writer
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_typestore

from loc3r_core.atomic import atomic_path

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

ROS_DISTRO = "kilted"
BAG_VERSION = 9  # rosbag2 metadata version whose QoS policies are names ("reliable"): Jazzy and later
INFINITE = {"sec": 9223372036, "nsec": 854775807}  # RMW_DURATION_INFINITE, as rosbag2 records it


@dataclass(frozen=True)
class TopicQos:
    """The QoS a topic is offered with on replay (only reliability and durability affect matching)."""

    reliable: bool = True
    transient_local: bool = False
    depth: int = 10

    def to_rosbag2(self) -> dict[str, Any]:
        """One entry of rosbag2's offered_qos_profiles (metadata version 9 spelling)."""
        return {"history": "keep_last", "depth": self.depth,
                "reliability": "reliable" if self.reliable else "best_effort",
                "durability": "transient_local" if self.transient_local else "volatile",
                "deadline": INFINITE, "lifespan": INFINITE, "liveliness": "automatic",
                "liveliness_lease_duration": INFINITE, "avoid_ros_namespace_conventions": False}


# Reliable is offered everywhere: it matches both reliable and best-effort subscribers.
STREAM = TopicQos()
# State rather than a stream (the map, its objects, static transforms): a late subscriber, such as
# RViz opened after `ros2 bag play` started, still gets the latest one, as from map_server.
LATCHED = TopicQos(transient_local=True, depth=1)
LATCHED_TYPES = frozenset({"nav_msgs/msg/OccupancyGrid", "visualization_msgs/msg/MarkerArray"})
LATCHED_TOPICS = frozenset({"/tf_static"})


def default_qos(topic: str, msgtype: str) -> TopicQos:
    return LATCHED if topic in LATCHED_TOPICS or msgtype in LATCHED_TYPES else STREAM


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Message definitions of the ROS 2 release loc3r targets (older rosbags: the newest it knows)."""
    for name in ("ROS2_KILTED", "ROS2_JAZZY", "ROS2_HUMBLE"):
        if hasattr(Stores, name):
            return get_typestore(getattr(Stores, name))
    return get_typestore(Stores.LATEST)


@cache
def message_definition(msgtype: str) -> tuple[str, str]:
    """(full ros2msg text with its "MSG: pkg/Type" dependencies, RIHS01 type hash) of e.g. "std_msgs/msg/String"."""
    require_known(msgtype)
    text, _ = typestore().generate_msgdef(msgtype, ros_version=2)
    return text, typestore().hash_rihs01(msgtype)


def require_known(msgtype: str) -> None:
    if msgtype not in typestore().fielddefs:
        raise ValueError(f"unknown ROS 2 message type {msgtype!r} (expected e.g. 'sensor_msgs/msg/Image')")


def check_fields(msgtype: str, message: Any) -> None:
    """Raise ValueError for a field the message type lacks (the CDR encoder would drop it silently)."""
    require_known(msgtype)
    try:
        _check_fields(msgtype, message, ())
    except ValueError as exc:
        raise ValueError(f"{msgtype}: {exc}") from None


def _check_fields(msgtype: str, message: Any, where: tuple[str, ...]) -> None:
    if not isinstance(message, Mapping):
        raise ValueError(f"{'.'.join(where) or 'the message'} should be a dict of fields, not {type(message).__name__}")
    fields = _fields(msgtype)
    for name, value in message.items():
        if name not in fields:
            raise ValueError(f"no field {'.'.join((*where, name))}")
        kind, detail = fields[name]
        if kind == Nodetype.NAME:
            _check_fields(detail, value, (*where, name))
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE) and detail[0][0] == Nodetype.NAME:
            for i, item in enumerate(value):
                _check_fields(detail[0][1], item, (*where, f"{name}[{i}]"))


@cache
def _fields(msgtype: str) -> dict[str, tuple]:
    """Field name -> (node type, detail) from rosbags' type store."""
    return dict(typestore().fielddefs[msgtype][1])


@dataclass
class _Channel:
    msgtype: str
    schema: Schema
    qos: TopicQos
    type_hash: str
    count: int = 0


@dataclass
class _Span:
    """First and last stamp written, for rosbag2's metadata."""

    start: int | None = None
    end: int = 0

    def add(self, stamp_ns: int) -> None:
        self.start = stamp_ns if self.start is None else min(self.start, stamp_ns)
        self.end = max(self.end, stamp_ns)


class RosMcapWriter:
    """Write ROS 2 messages (dicts) to an MCAP file, all or nothing.

        with RosMcapWriter(Path("run.mcap")) as writer:
            writer.write("/loc3r/pose", "geometry_msgs/msg/PoseWithCovarianceStamped", msg, stamp_ns)

    The file is written to a temporary sibling and takes its name only when the block ends
    without an exception; otherwise nothing is left behind. Log and publish time are the stamp.
    """

    def __init__(self, path: Path, ros_distro: str = ROS_DISTRO) -> None:
        self.path = Path(path)
        self.ros_distro = ros_distro
        self._stack: ExitStack | None = None
        self._writer: Writer | None = None
        self._schemas: dict[str, Schema] = {}
        self._channels: dict[str, _Channel] = {}
        self._span = _Span()

    def __enter__(self) -> RosMcapWriter:
        self._schemas, self._channels, self._span = {}, {}, _Span()
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._writer = Writer(stack.enter_context(tmp.open("wb")))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        stack, self._stack, writer, self._writer = self._stack, None, self._writer, None
        assert stack is not None and writer is not None, "RosMcapWriter exited without being entered"
        if exc_type is None:
            try:
                writer.add_metadata("rosbag2", {"serialized_metadata": self._bag_metadata(),
                                                "ROS_DISTRO": self.ros_distro})
                writer.finish()
            except BaseException as err:  # still remove the temporary file
                if not stack.__exit__(type(err), err, err.__traceback__):
                    raise
                return False
        return bool(stack.__exit__(exc_type, exc, tb))

    @property
    def topics(self) -> dict[str, str]:
        """Message type of each topic written so far."""
        return {topic: channel.msgtype for topic, channel in self._channels.items()}

    def write(self, topic: str, msgtype: str, message: Mapping[str, Any], stamp_ns: int,
              latched: bool | None = None) -> None:
        """Append one message; `msgtype` like "sensor_msgs/msg/Image", the dict as ros_messages builds it.

        latched: offer the topic reliable + transient_local (True) or volatile (False) on replay;
        None takes default_qos. A topic keeps the type and QoS of its first message.
        """
        if self._writer is None:
            raise RuntimeError("RosMcapWriter.write outside its with block")
        stamp_ns = int(stamp_ns)
        if stamp_ns < 0:
            raise ValueError(f"{topic}: stamps must be nanoseconds since the epoch, got {stamp_ns}")
        check_fields(msgtype, message)  # before the channel: a refused first message adds no topic
        channel = self._channel(topic, msgtype, latched)
        self._writer.write_message(topic, channel.schema, message, log_time=stamp_ns, publish_time=stamp_ns)
        channel.count += 1
        self._span.add(stamp_ns)

    def _channel(self, topic: str, msgtype: str, latched: bool | None) -> _Channel:
        qos = None if latched is None else LATCHED if latched else STREAM
        channel = self._channels.get(topic)
        if channel is not None:
            if channel.msgtype != msgtype:
                raise ValueError(f"{topic} carries {channel.msgtype}, not {msgtype}")
            if qos is not None and qos != channel.qos:
                raise ValueError(f"{topic} was first written with latched={channel.qos == LATCHED}")
            return channel
        channel = self._register(topic, msgtype, qos or default_qos(topic, msgtype))
        self._channels[topic] = channel
        return channel

    def _register(self, topic: str, msgtype: str, qos: TopicQos) -> _Channel:
        """Add the channel with rosbag2's metadata before mcap_ros2 would add a bare one.

        mcap_ros2 0.6 registers a channel on a topic's first message, without metadata, unless
        the topic already has one: so register it on its underlying mcap writer and tell it.
        """
        assert self._writer is not None
        text, type_hash = message_definition(msgtype)
        if msgtype not in self._schemas:
            self._schemas[msgtype] = self._writer.register_msgdef(msgtype, text)
        schema = self._schemas[msgtype]
        metadata = {"offered_qos_profiles": _yaml([qos.to_rosbag2()]), "topic_type_hash": type_hash}
        self._writer._channel_ids[topic] = self._writer._writer.register_channel(
            topic=topic, message_encoding="cdr", schema_id=schema.id, metadata=metadata)
        return _Channel(msgtype, schema, qos, type_hash)

    def _bag_metadata(self) -> str:
        """rosbag2's BagMetadata (version 9), which its MCAP plugin reads from the "rosbag2" record.

        Its version tells rosbag2 how to parse the channels' QoS; without it rosbag2 guesses.
        """
        start = self._span.start or 0
        duration = self._span.end - start
        count = sum(channel.count for channel in self._channels.values())
        topics = [{"topic_metadata": {"name": topic, "type": channel.msgtype, "serialization_format": "cdr",
                                      "offered_qos_profiles": [channel.qos.to_rosbag2()],
                                      "type_description_hash": channel.type_hash},
                   "message_count": channel.count}
                  for topic, channel in self._channels.items()]
        return _yaml({
            "version": BAG_VERSION, "storage_identifier": "mcap", "relative_file_paths": [self.path.name],
            "duration": {"nanoseconds": duration}, "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": count, "topics_with_message_count": topics,
            "compression_format": "", "compression_mode": "",
            "files": [{"path": self.path.name, "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration}, "message_count": count}],
            "custom_data": {}, "ros_distro": self.ros_distro,
        })


PLAIN = re.compile(r"[A-Za-z_/][\w./-]*")
RESERVED = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


def _yaml(value: Any) -> str:
    """Block YAML as rosbag2 (yaml-cpp) dumps it, for the few shapes written here; no YAML dependency."""
    return "\n".join(_yaml_lines(value, ""))


def _yaml_lines(value: Any, pad: str) -> list[str]:
    if isinstance(value, dict) and value:
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines += [f"{pad}{key}:", *_yaml_lines(item, pad + "  ")]
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(item)}")
        return lines
    if isinstance(value, list) and value:
        lines = []
        for item in value:  # "- " takes the place of the item's first indent
            first, *rest = _yaml_lines(item, pad + "  ")
            lines += [f"{pad}- {first[len(pad) + 2:]}", *rest]
        return lines
    return [pad + _yaml_scalar(value)]


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):  # empty
        return "{}" if isinstance(value, dict) else "[]"
    if isinstance(value, str):  # plain where unambiguous, else JSON's double quotes (valid YAML)
        return value if PLAIN.fullmatch(value) and value.lower() not in RESERVED else json.dumps(value)
    return json.dumps(value)  # ints, true / false
