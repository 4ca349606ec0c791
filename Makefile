# The README's two commands: `make demo` and `make test`. Both set up what they need first:
# .venv (pinned Python packages, the ROS 2 wheels, Debian packages via tools/bootstrap.sh)
# and .ros/install (this package's rosidl interfaces + the test-only tf2_msgs).
SHELL := /bin/bash
VENV := .venv
BOOTSTRAP_STAMP := $(VENV)/.bootstrap-stamp
ROS_STAMP := .ros/install/.build-stamp
DEMO_OUT ?= demo_out
ENV := . tools/env.sh &&

ROS_INPUTS := package.xml CMakeLists.txt tools/build_interfaces.sh $(wildcard msg/*.msg srv/*.srv) \
	$(wildcard test/ros_interfaces/tf2_msgs/*.* test/ros_interfaces/tf2_msgs/msg/*) \
	$(wildcard scripts/* launch/* config/* rviz/*)

.PHONY: setup demo test lint clean

setup: $(BOOTSTRAP_STAMP) $(ROS_STAMP)

$(BOOTSTRAP_STAMP): requirements.txt setup.py tools/bootstrap.sh
	tools/bootstrap.sh
	touch $@

$(ROS_STAMP): $(BOOTSTRAP_STAMP) $(ROS_INPUTS)
	tools/build_interfaces.sh
	touch $@

# The main job on its embedded default: a new synthetic room streamed through the runtime with
# the shipped model (ONNX Runtime); prints placed situations and answers next to the truth and
# writes $(DEMO_OUT)/demo.mcap (ROS 2 messages) and $(DEMO_OUT)/demo.png.
demo: setup
	$(ENV) loc3r demo --out $(DEMO_OUT)

lint: $(BOOTSTRAP_STAMP)
	$(ENV) ruff check .

test: setup lint
	$(ENV) LOC3R_REQUIRE_ROS=1 python -m pytest

clean:
	rm -rf .ros $(DEMO_OUT) .pytest_cache .ruff_cache
