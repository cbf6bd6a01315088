"""`EnvConfig`: the one typed configuration of a `DrivingEnv` (scenario, backend, control, sensors, reward)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from cvd_sim.scenarios.schema import Scenario
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cvd_sim.geometry.camera import NUSCENES_CAMERAS
from cvd_sim.world.scores import DRIVABLE_AREA_TOLERANCE

ScenarioRef = str | Scenario  # a file path, a library name, "builder:NAME", or a Scenario object


class RewardWeights(BaseModel):
    """Reward = progress * metres along the route - the penalties below (each counted once per step)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    progress: float = Field(0.1, ge=0, description="per metre of route progress")
    collision: float = Field(10.0, ge=0, description="per new collision of the ego")
    offroad: float = Field(5.0, ge=0, description="ego beyond the drivable area tolerance")
    wrong_way: float = Field(0.5, ge=0, description="per metre driven against the lane direction")
    discomfort: float = Field(0.05, ge=0, description="a step breaking a nuPlan comfort bound")
    goal: float = Field(1.0, ge=0, description="bonus on reaching the route end")


class EnvConfig(BaseModel):
    """Everything a `DrivingEnv` needs. Load from YAML with `load_env_config`.

    scenario: one or several (sampled on reset with the env's seeded generator); each a scenario file, a
    library name (`scenarios/library/NAME.yaml`), `builder:NAME` (an edge-case builder with default
    parameters) or a `Scenario`. control: `accel_steer` = Box (m/s^2, rad); `waypoints` = Box [K, 2] ego-frame
    rear-axle positions `waypoint_interval` s apart, tracked by the world's trajectory tracker.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    scenario: ScenarioRef | list[ScenarioRef] = "builder:stalled_vehicle"
    backend: str = "raycast"
    backend_options: dict[str, Any] = {}
    # a vector env's slots sharded over this many processes, each batching its share (1 = in process)
    backend_workers: Annotated[int, Field(ge=1, le=64)] = 1
    control: Literal["accel_steer", "waypoints"] = "accel_steer"
    num_waypoints: Annotated[int, Field(ge=1, le=64)] = 8
    waypoint_interval: Annotated[float, Field(gt=0, le=5.0)] = 0.5
    image_height: Annotated[int, Field(ge=8, le=2048)] = 64
    image_width: Annotated[int, Field(ge=8, le=4096)] = 112
    cameras: list[str] = list(NUSCENES_CAMERAS)
    sensors: bool = True  # False: no images/depth in the observation (state-only RL, much faster)
    reward: RewardWeights = RewardWeights()
    privileged: bool = False  # add ego-frame boxes and map polylines to the observation
    max_boxes: Annotated[int, Field(ge=1, le=512)] = 32
    max_polylines: Annotated[int, Field(ge=1, le=512)] = 32
    polyline_points: Annotated[int, Field(ge=2, le=256)] = 20
    perception_range: Annotated[float, Field(gt=0, le=500)] = 60.0  # m, radius for privileged boxes/map
    max_steps: Annotated[int, Field(ge=1)] | None = None  # None = the scenario duration (never longer)
    seed: Annotated[int, Field(ge=0)] | None = None  # default seed of the first reset
    randomize_traffic: bool = False  # False: traffic uses the scenario's seed; True: drawn per reset
    offroad_tolerance: Annotated[float, Field(ge=0)] = DRIVABLE_AREA_TOLERANCE  # m, terminate beyond
    goal_tolerance: Annotated[float, Field(ge=0)] = 1.0  # m short of the route end counts as reached
    max_accel: Annotated[float, Field(gt=0)] = 3.0  # action bounds (m/s^2, rad), clipped with info flag
    max_decel: Annotated[float, Field(gt=0)] = 8.0
    max_steer: Annotated[float, Field(gt=0)] = 0.6

    @field_validator("cameras")
    @classmethod
    def _known_cameras(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in NUSCENES_CAMERAS]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"cameras must be distinct names from {', '.join(NUSCENES_CAMERAS)}, got {names}"
            )
        return names

    @field_validator("scenario")
    @classmethod
    def _non_empty(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("give at least one scenario")
        return value

    def scenario_list(self) -> list[ScenarioRef]:
        return self.scenario if isinstance(self.scenario, list) else [self.scenario]


class EnvConfigError(ValueError):
    """A bad env configuration; the message names the source and the field."""


def make_env_config(source: str = "<kwargs>", **fields) -> EnvConfig:
    """Validate fields into an `EnvConfig`, raising `EnvConfigError("SOURCE: field: reason")`."""
    try:
        return EnvConfig(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise EnvConfigError(f"{source}: {where}: {first['msg']}") from None


def load_env_config(path: str) -> EnvConfig:
    """An `EnvConfig` from a YAML file (keys = the fields above)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as err:
        raise EnvConfigError(f"{path}: <file>: {err}") from None
    if not isinstance(data, dict):
        raise EnvConfigError(f"{path}: <root>: expected a mapping")
    return make_env_config(path, **data)
