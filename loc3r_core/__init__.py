"""loc3r_core: everything of loc3r that is not ROS (world generation, data, model, runtime, CLI).

Never imports rclpy; heavy dependencies (torch, mujoco) are imported by the modules that
need them, so `import loc3r_core` stays cheap.
"""

__version__ = "0.1.0"
