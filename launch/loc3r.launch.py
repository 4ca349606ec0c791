"""ros2 launch loc3r loc3r.launch.py image:=/camera/image_raw [camera_info:=...] [odom:=...] [rviz:=true]

Starts loc3r_node in the namespace `namespace` (default loc3r) with its topics remapped to
the robot's, its parameters from `params_file`, and optionally RViz with rviz/loc3r.rviz.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("loc3r")
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="sensor_msgs/Image topic"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="sensor_msgs/CameraInfo topic"),
        DeclareLaunchArgument("odom", default_value="/odom", description="nav_msgs/Odometry topic (the pose prior)"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "loc3r.yaml"]),
                              description="parameter YAML for loc3r_node"),
        DeclareLaunchArgument("model", default_value="",
                              description="model folder (torch backend) or checkpoint to check an export against; "
                                          "empty: the shipped model"),
        DeclareLaunchArgument("backend", default_value="onnx", description="onnx or torch"),
        DeclareLaunchArgument("namespace", default_value="loc3r", description="namespace of the node and its topics"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz with rviz/loc3r.rviz"),
    ]
    node = Node(
        package="loc3r",
        executable="loc3r_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file"),
                    {"model.checkpoint": LaunchConfiguration("model"),
                     "model.backend": LaunchConfiguration("backend")}],
        remappings=[("image", LaunchConfiguration("image")), ("camera_info", LaunchConfiguration("camera_info")),
                    ("odom", LaunchConfiguration("odom"))],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "rviz", "loc3r.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, node, rviz])
