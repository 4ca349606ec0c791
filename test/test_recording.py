"""Recordings read back as frames: real ROS 2 bags (sqlite3 and MCAP) written with rosbags, a PyAV
video, and the damaged or mismatched inputs a user will hand over."""

from __future__ import annotations

import array
import io
import math
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from loc3r_core.errors import DataError
from loc3r_core.io.images import SUPPORTED_ENCODINGS, decode_compressed_image, decode_raw_image
from loc3r_core.io.recording import list_topics, read_recording

TS = get_typestore(Stores.ROS2_KILTED)
T = TS.types
S = 1_000_000_000
H, W = 5, 6
RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (H, W), dtype=np.uint8)
K0 = (200.0, 210.0, 3.1, 2.4)  # fx, fy, cx, cy of the first CameraInfo
K1 = (150.0, 155.0, 2.9, 2.6)  # and of the second
STORAGES = [StoragePlugin.SQLITE3, StoragePlugin.MCAP]


# --- message builders ------------------------------------------------------------------------


def header(stamp_ns: int, frame_id: str = "cam_optical"):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // S, nanosec=stamp_ns % S),
                                    frame_id=frame_id)


def raw_image(stamp_ns: int, encoding: str, pixels: np.ndarray, pad: int = 0, height: int | None = None):
    """An Image of pixels (H, W, C) with `pad` garbage bytes after each row."""
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    rows = pixels.reshape(pixels.shape[0], -1)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return T["sensor_msgs/msg/Image"](header=header(stamp_ns), height=height or pixels.shape[0],
                                      width=pixels.shape[1], encoding=encoding, is_bigendian=0,
                                      step=padded.shape[1], data=padded.reshape(-1).copy())


def encoded(rgb: np.ndarray, fmt: str, **kwargs) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **kwargs)
    return np.frombuffer(buffer.getvalue(), np.uint8).copy()


def compressed_image(stamp_ns: int, fmt: str, data: np.ndarray):
    return T["sensor_msgs/msg/CompressedImage"](header=header(stamp_ns), format=fmt, data=data)


def camera_info(stamp_ns: int, k: tuple[float, float, float, float], width: int = W, height: int = H):
    fx, fy, cx, cy = k
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return T["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns), height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
        k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], float), r=np.eye(3).reshape(-1),
        p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], float), binning_x=0, binning_y=0, roi=roi)


def odom_xy_yaw(stamp_ns: int) -> tuple[float, float, float]:
    """The robot's motion: constant velocity and turn rate, so interpolation is exact."""
    t = stamp_ns / S
    return 2.0 * t - 1.0, 0.5 * t, 0.8 * t - 0.3


def odometry(stamp_ns: int, nan: bool = False):
    x, y, yaw = odom_xy_yaw(stamp_ns)
    vec3, geo = T["geometry_msgs/msg/Vector3"], "geometry_msgs/msg/"
    pose = T[geo + "Pose"](position=T[geo + "Point"](x=math.nan if nan else x, y=y, z=0.25),
                           orientation=T[geo + "Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)))
    twist = T[geo + "Twist"](linear=vec3(x=0.0, y=0.0, z=0.0), angular=vec3(x=0.0, y=0.0, z=0.0))
    return T["nav_msgs/msg/Odometry"](header=header(stamp_ns, "odom"), child_frame_id="base_link",
                                      pose=T[geo + "PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
                                      twist=T[geo + "TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))


def expected_pose(stamp_ns: int) -> np.ndarray:
    x, y, yaw = odom_xy_yaw(stamp_ns)
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0, x], [s, c, 0, y], [0, 0, 1, 0.25], [0, 0, 0, 1]])


def write_bag(path: Path, storage: StoragePlugin, messages: list[tuple[str, int, object]]) -> Path:
    """A ROS 2 bag of (topic, receive time ns, message), written in the order given."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        connections = {}
        for topic, log_ns, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=TS)
            writer.write(connections[topic], log_ns, TS.serialize_cdr(msg, msg.__msgtype__))
    return path


def storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))


# --- the full bag ----------------------------------------------------------------------------

# One raw topic cycling through every encoding (padded rows for bgr8 and mono8).
RAW = [
    ("rgb8", RGB, RGB, 0),
    ("bgr8", RGB[:, :, ::-1], RGB, 7),
    ("rgba8", np.dstack([RGB, np.full((H, W), 9, np.uint8)]), RGB, 0),
    ("bgra8", np.dstack([RGB[:, :, ::-1], np.full((H, W), 9, np.uint8)]), RGB, 4),
    ("mono8", GRAY, np.dstack([GRAY] * 3), 2),
]
IMAGE_STAMPS = [S + i * S // 10 for i in range(len(RAW))]  # 1.0, 1.1, ... 1.4 s


def full_bag_messages() -> list[tuple[str, int, object]]:
    messages = [("/cam/info", S // 2, camera_info(S // 2, K0))]
    messages += [("/odom", t, odometry(t)) for t in range(S - S // 20, S + S // 2, S // 10)]  # 0.95 .. 1.45 s
    for stamp, (encoding, pixels, _, pad) in zip(IMAGE_STAMPS, RAW, strict=True):
        messages.append(("/cam/raw", stamp + 3_000_000, raw_image(stamp, encoding, pixels, pad)))  # received 3 ms late
    messages.append(("/cam/info", IMAGE_STAMPS[2] + S // 20, camera_info(IMAGE_STAMPS[2] + S // 20, K1)))
    messages.append(("/cam/compressed", S, compressed_image(S, "png", encoded(RGB, "PNG"))))
    return sorted(messages, key=lambda m: m[1])


@pytest.mark.parametrize("storage", STORAGES, ids=["sqlite3", "mcap"])
def test_raw_images_come_back_pixel_exact_with_intrinsics_and_interpolated_odometry(tmp_path, storage):
    bag = write_bag(tmp_path / "bag", storage, full_bag_messages())
    frames = list(read_recording(bag, "/cam/raw", camera_info_topic="/cam/info", odom_topic="/odom"))

    assert [f.stamp_ns for f in frames] == IMAGE_STAMPS  # header stamps, not the receive times
    for frame, (encoding, _, expected, _) in zip(frames, RAW, strict=True):
        assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (H, W, 3), encoding
        np.testing.assert_array_equal(frame.rgb, expected, err_msg=encoding)
        # Each image sits halfway between two odometry messages: exact under constant velocity.
        np.testing.assert_allclose(frame.odometry, expected_pose(frame.stamp_ns), atol=1e-9, err_msg=encoding)
        assert frame.frame_id == "cam_optical"
    # The latest CameraInfo before each image: K0 for the first three, K1 after it changed.
    for frame in frames:
        fx, fy, cx, cy = K0 if frame.stamp_ns <= IMAGE_STAMPS[2] else K1
        k = frame.intrinsics
        assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (fx, fy, cx, cy, W, H)


@pytest.mark.parametrize("storage", STORAGES, ids=["sqlite3", "mcap"])
def test_compressed_jpeg_and_png(tmp_path, storage):
    u, v = np.meshgrid(np.linspace(30, 220, 32), np.linspace(60, 200, 24))
    smooth = np.dstack([u, v, np.full_like(u, 128.0)]).astype(np.uint8)  # JPEG keeps smooth ramps well
    messages = [("/cam/compressed", S, compressed_image(S, "rgb8; jpeg compressed bgr8", encoded(smooth, "JPEG",
                                                                                                  quality=95))),
                ("/cam/compressed", 2 * S, compressed_image(2 * S, "png", encoded(smooth, "PNG")))]
    bag = write_bag(tmp_path / "bag", storage, messages)
    jpeg, png = read_recording(bag, None)  # the only image topic is picked
    assert jpeg.rgb.shape == png.rgb.shape == (24, 32, 3)
    assert np.abs(jpeg.rgb.astype(int) - smooth).mean() < 3.0
    np.testing.assert_array_equal(png.rgb, smooth)
    assert jpeg.intrinsics is None and jpeg.odometry is None and (jpeg.stamp_ns, png.stamp_ns) == (S, 2 * S)


def test_bare_mcap_file_metadata_path_topics_and_max_frames(tmp_path):
    bag = write_bag(tmp_path / "bag", StoragePlugin.MCAP, full_bag_messages())
    mcap = storage_file(bag)
    assert list_topics(mcap) == list_topics(bag) == {
        "/cam/compressed": "sensor_msgs/msg/CompressedImage", "/cam/info": "sensor_msgs/msg/CameraInfo",
        "/cam/raw": "sensor_msgs/msg/Image", "/odom": "nav_msgs/msg/Odometry"}
    from_file = [f.stamp_ns for f in read_recording(mcap, "/cam/raw", max_frames=3)]
    from_yaml = [f.stamp_ns for f in read_recording(bag / "metadata.yaml", "/cam/raw", max_frames=3)]
    assert from_file == from_yaml == IMAGE_STAMPS[:3]
    assert list(read_recording(mcap, "/cam/raw", max_frames=0)) == []


def test_odometry_outside_its_span_uses_the_nearest_pose_within_tolerance(tmp_path):
    messages = [("/odom", S, odometry(S)), ("/odom", S + S // 10, odometry(S + S // 10)),
                ("/cam/raw", S - S // 20, raw_image(S - S // 20, "rgb8", RGB)),  # 50 ms before the first pose
                ("/cam/raw", 3 * S, raw_image(3 * S, "rgb8", RGB))]  # 1.9 s after the last
    bag = write_bag(tmp_path / "bag", StoragePlugin.SQLITE3, sorted(messages, key=lambda m: m[1]))
    early, late = read_recording(bag, "/cam/raw", odom_topic="/odom")
    np.testing.assert_allclose(early.odometry, expected_pose(S), atol=1e-12)
    assert late.odometry is None


def test_frames_stop_waiting_when_odometry_stops(tmp_path):
    # One pose at 1.0 s, then 40 images at 10 Hz: frames are not held until the end of the bag, and
    # only those within the 0.1 s tolerance of that pose get it.
    bag = small_bag(tmp_path, StoragePlugin.MCAP, count=40)
    frames = read_recording(bag, "/cam/raw", odom_topic="/odom")
    first = next(frames)
    np.testing.assert_allclose(first.odometry, expected_pose(S), atol=1e-12)
    rest = list(frames)
    assert [f.stamp_ns for f in rest] == [S + i * S // 10 for i in range(1, 40)]
    np.testing.assert_allclose(rest[0].odometry, expected_pose(S), atol=1e-12)  # exactly 0.1 s away
    assert all(f.odometry is None for f in rest[1:])


# --- video -----------------------------------------------------------------------------------

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 50, 210)]


def write_video(path: Path, frames: int, fps: int = 10) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            rgb = np.full((48, 64, 3), COLOURS[i % len(COLOURS)], np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


def test_video_frames_count_stamps_and_colours(tmp_path):
    video = tmp_path / "walk.mp4"
    write_video(video, 9)
    frames = list(read_recording(video, None))
    assert len(frames) == 9
    assert [f.stamp_ns for f in frames] == [i * S // 10 for i in range(9)]  # pts at 10 fps
    for i, frame in enumerate(frames):
        assert frame.rgb.shape == (48, 64, 3) and frame.intrinsics is None and frame.odometry is None
        np.testing.assert_allclose(frame.rgb.reshape(-1, 3).mean(axis=0), COLOURS[i % 3], atol=12)
    assert len(list(read_recording(video, None, max_frames=4))) == 4


def test_undecodable_video(tmp_path):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"broken\.mp4.*(cannot be decoded|no video stream|no decodable)"):
        list(read_recording(video, None))


# --- faults ----------------------------------------------------------------------------------


def small_bag(tmp_path: Path, storage: StoragePlugin, count: int = 40) -> Path:
    big = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)  # incompressible, so halving the file loses data
    messages = [("/cam/raw", S + i * S // 10, raw_image(S + i * S // 10, "rgb8", big)) for i in range(count)]
    messages.append(("/odom", S, odometry(S)))
    return write_bag(tmp_path / f"bag_{storage.name.lower()}", storage, sorted(messages, key=lambda m: m[1]))


def test_truncated_mcap(tmp_path):
    mcap = storage_file(small_bag(tmp_path, StoragePlugin.MCAP))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    for path in (mcap.parent, mcap):
        with pytest.raises(DataError, match="truncated or corrupt"):
            list(read_recording(path, "/cam/raw"))


def test_corrupt_db3(tmp_path):
    db3 = storage_file(small_bag(tmp_path, StoragePlugin.SQLITE3))
    data = bytearray(db3.read_bytes())
    data[: len(data)] = RNG.integers(0, 256, len(data), dtype=np.uint8).tobytes()
    db3.write_bytes(bytes(data))
    with pytest.raises(DataError, match="truncated or corrupt"):
        list(read_recording(db3.parent, "/cam/raw"))


def test_missing_metadata_yaml(tmp_path):
    bag = small_bag(tmp_path, StoragePlugin.SQLITE3)
    (bag / "metadata.yaml").unlink()
    with pytest.raises(DataError, match=r"truncated or corrupt.*metadata\.yaml is missing"):
        read_recording(bag, "/cam/raw")


def test_unknown_topic_lists_the_topics_that_exist(tmp_path):
    bag = small_bag(tmp_path, StoragePlugin.MCAP, count=2)
    with pytest.raises(DataError) as err:
        list(read_recording(bag, "/camera/image_raw"))
    message = str(err.value)
    assert "no topic /camera/image_raw" in message
    assert "/cam/raw (sensor_msgs/msg/Image)" in message and "/odom (nav_msgs/msg/Odometry)" in message
    assert "\n" not in message
    with pytest.raises(DataError, match="no topic /cam/info"):
        list(read_recording(bag, "/cam/raw", camera_info_topic="/cam/info"))


def test_topic_of_the_wrong_type(tmp_path):
    bag = small_bag(tmp_path, StoragePlugin.SQLITE3, count=2)
    with pytest.raises(DataError, match="topic /odom is nav_msgs/msg/Odometry, expected sensor_msgs/msg/Image or"):
        list(read_recording(bag, "/odom"))
    with pytest.raises(DataError, match="topic /cam/raw is sensor_msgs/msg/Image, expected nav_msgs/msg/Odometry"):
        list(read_recording(bag, "/cam/raw", odom_topic="/cam/raw"))


def test_several_image_topics_need_a_choice(tmp_path):
    bag = write_bag(tmp_path / "bag", StoragePlugin.MCAP, full_bag_messages())
    with pytest.raises(DataError, match="several image topics, choose one: /cam/compressed, /cam/raw"):
        list(read_recording(bag, None))


def test_unsupported_encoding_and_wrong_data_length_in_a_bag(tmp_path):
    depth = raw_image(S, "16UC1", RNG.integers(0, 256, (H, W, 2), dtype=np.uint8))
    bag = write_bag(tmp_path / "depth", StoragePlugin.SQLITE3, [("/depth", S, depth)])
    with pytest.raises(DataError, match=r"/depth at stamp 1\.000000000 s: unsupported image encoding '16UC1'; "
                                        r"supported: rgb8, bgr8, rgba8, bgra8, mono8"):
        list(read_recording(bag, "/depth"))
    short = raw_image(S, "rgb8", RGB, height=H + 1)  # claims one row more than it has
    bag = write_bag(tmp_path / "short", StoragePlugin.MCAP, [("/cam", S, short)])
    with pytest.raises(DataError, match=rf"image data has {H * W * 3} bytes, expected step {W * 3} x height {H + 1}"):
        list(read_recording(bag, "/cam"))


def test_nan_odometry_names_topic_and_stamp(tmp_path):
    stamp = S + 250_000_000
    messages = [("/cam/raw", S, raw_image(S, "rgb8", RGB)), ("/odom", stamp, odometry(stamp, nan=True))]
    bag = write_bag(tmp_path / "bag", StoragePlugin.MCAP, messages)
    with pytest.raises(DataError, match=r"odometry on /odom at stamp 1\.250000000 s is not finite"):
        list(read_recording(bag, "/cam/raw", odom_topic="/odom"))


def test_paths_that_are_not_recordings(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_recording(tmp_path / "nowhere.mcap", "/cam")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(DataError, match=r"neither a ROS 2 bag .* nor a video"):
        read_recording(notes, "/cam")
    with pytest.raises(DataError, match="neither a ROS 2 bag"):
        read_recording(tmp_path, "/cam")  # a folder with no bag in it
    with pytest.raises(DataError, match="is a video"):
        list_topics(shutil.copy(notes, tmp_path / "clip.mp4"))


# --- images.py on its own ---------------------------------------------------------------------


def test_raw_decoding_takes_any_bytes_like_and_aliases():
    bgr = RGB[:, :, ::-1].tobytes()
    for data in (bgr, bytearray(bgr), memoryview(bgr), array.array("B", bgr), list(bgr)):
        np.testing.assert_array_equal(decode_raw_image("8UC3", H, W, W * 3, data), RGB)
    np.testing.assert_array_equal(decode_raw_image("8UC1", H, W, W, GRAY.tobytes()), np.dstack([GRAY] * 3))
    assert SUPPORTED_ENCODINGS == ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
    out = decode_raw_image("rgb8", H, W, W * 3, RGB.tobytes())
    assert out.flags.writeable and out.flags.c_contiguous  # owns its memory, not the message's buffer


@pytest.mark.parametrize(("args", "message"), [
    (("rgb8", H, 0, 0, b""), "width and height must be positive"),
    (("rgb8", 0, W, W * 3, b""), "width and height must be positive"),
    (("rgb8", H, W, W * 3 - 1, bytes((W * 3 - 1) * H)), "step 17 is less than width 6 x 3"),
    (("rgb8", H, W, W * 3, bytes(W * 3 * H - 1)), "has 89 bytes, expected step 18 x height 5 = 90"),
    (("yuv422", H, W, W * 2, bytes(W * 2 * H)), "unsupported image encoding 'yuv422'"),
])
def test_raw_decoding_faults(args, message):
    with pytest.raises(DataError, match=message):
        decode_raw_image(*args)


def test_compressed_decoding_faults():
    jpeg = encoded(RGB, "JPEG").tobytes()
    with pytest.raises(DataError, match="cannot be decoded"):
        decode_compressed_image("jpeg", jpeg[: len(jpeg) // 2])
    with pytest.raises(DataError, match="cannot be decoded"):
        decode_compressed_image("png", b"not an image at all")
    with pytest.raises(DataError, match="depth image"):
        decode_compressed_image("16UC1; compressedDepth", encoded(RGB, "PNG"))
    assert decode_compressed_image("jpeg", jpeg).shape == (H, W, 3)


def test_video_stamps_follow_the_time_base(tmp_path):
    video = tmp_path / "slow.mkv"
    write_video(video, 3, fps=4)
    stamps = [f.stamp_ns for f in read_recording(video, "/ignored")]
    assert stamps == [round(Fraction(i, 4) * S) for i in range(3)]
