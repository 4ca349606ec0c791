"""loc3r_ros: the thin rclpy layer; converts ROS messages to loc3r_core types and back."""
