"""The G1 robot: specification (single source of truth) and MuJoCo model building."""

from asap.robot.spec import RobotSpec, get_spec

__all__ = ["RobotSpec", "get_spec"]
