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

# Until the streaming runtime exists (issue: runtime and demo), the demo generates one fresh
# synthetic scene, draws its contact sheet, and runs the shipped model on it: its metrics
# and a picture of the predicted vs true map and poses.
demo: setup
	$(ENV) loc3r data generate --out $(DEMO_OUT)/world --split test --scenes 1
	$(ENV) loc3r data show $(DEMO_OUT)/world/scene_00000 --out $(DEMO_OUT)/scene_sheet.png
	$(ENV) loc3r eval --data $(DEMO_OUT)/world --figure $(DEMO_OUT)/model_vs_truth.png

lint: $(BOOTSTRAP_STAMP)
	$(ENV) ruff check .

test: setup lint
	$(ENV) LOC3R_REQUIRE_ROS=1 python -m pytest

clean:
	rm -rf .ros $(DEMO_OUT) .pytest_cache .ruff_cache
