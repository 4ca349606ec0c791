"""Reading recordings (ROS 2 bags, video) and writing results as ROS 2 MCAP files."""
