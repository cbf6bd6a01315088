"""Scenario schema: typed pydantic models of a driving scenario (map, agents and behaviours, ego, scene).

Units: metres, seconds, radians, m/s. Poses are in the world frame (x east, y north, yaw from +x, CCW).
An agent's pose is its box centre on the ground; the ego's pose is its rear axle (DESIGN §4 ego frame).
Structural checks (types, finite numbers, positive sizes, polylines of >= 2 points) happen here; the
cross-field checks (references resolve, agents on the map, no overlaps at t=0) run in `validate.py`
when a `Scenario` is built, and raise `ScenarioError`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from cvd_sim.scenarios.categories import CATEGORIES, CATEGORY_NAMES, category_id
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator, model_validator

SCHEMA_VERSION = 1
CAMERA_RIG_PRESETS: tuple[str, ...] = ("nuscenes",)

MAX_COORD = 1e7  # metres; keeps geometry far from float overflow
PositiveFloat = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]
Coord = Annotated[float, Field(ge=-MAX_COORD, le=MAX_COORD, allow_inf_nan=False)]
Angle = Annotated[float, Field(ge=-1e3, le=1e3, allow_inf_nan=False)]
Point2 = tuple[Coord, Coord]
Polyline = Annotated[list[Point2], Field(min_length=2)]
Polygon = Annotated[list[Point2], Field(min_length=3)]
Id = Annotated[str, Field(min_length=1, max_length=128)]

# Road line types in ScenarioNet's vocabulary (ROAD_LINE_<NAME upper-cased>).
RoadLineType = Literal[
    "broken_single_white",
    "solid_single_white",
    "solid_double_white",
    "broken_single_yellow",
    "broken_double_yellow",
    "solid_single_yellow",
    "solid_double_yellow",
    "passing_double_yellow",
    "unknown",
]
RoadEdgeType = Literal["boundary", "median", "sidewalk", "unknown"]  # ROAD_EDGE_<NAME>
LaneType = Literal["surface_street", "freeway", "bike_lane", "unknown"]  # LANE_<NAME>


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, frozen=False)


# ---------------------------------------------------------------- map


class LaneSpec(StrictModel):
    """One lane: centreline in driving direction; width, or explicit left/right boundaries."""

    id: Id
    centerline: Polyline
    width: PositiveFloat = 3.5
    left_boundary: Polyline | None = None
    right_boundary: Polyline | None = None
    successors: list[Id] = []
    predecessors: list[Id] = []
    left_neighbors: list[Id] = []
    right_neighbors: list[Id] = []
    speed_limit: PositiveFloat = 13.9  # m/s
    type: LaneType = "surface_street"

    @model_validator(mode="after")
    def _both_boundaries_or_none(self) -> LaneSpec:
        if (self.left_boundary is None) != (self.right_boundary is None):
            raise ValueError("give both left_boundary and right_boundary, or neither")
        return self


class RoadLineSpec(StrictModel):
    id: Id
    type: RoadLineType = "broken_single_white"
    polyline: Polyline


class RoadEdgeSpec(StrictModel):
    id: Id
    type: RoadEdgeType = "boundary"
    polyline: Polyline


class CrosswalkSpec(StrictModel):
    id: Id
    polygon: Polygon


class StopLineSpec(StrictModel):
    id: Id
    polyline: Polyline
    lanes: list[Id] = []  # lanes this stop line controls


class MapSpec(StrictModel):
    name: str = ""
    lanes: list[LaneSpec] = Field(min_length=1)
    road_lines: list[RoadLineSpec] = []
    road_edges: list[RoadEdgeSpec] = []
    crosswalks: list[CrosswalkSpec] = []
    stop_lines: list[StopLineSpec] = []

    def lane(self, lane_id: str) -> LaneSpec:
        for lane in self.lanes:
            if lane.id == lane_id:
                return lane
        raise KeyError(f"no lane {lane_id!r}")

    def lane_ids(self) -> list[str]:
        return [lane.id for lane in self.lanes]


# ---------------------------------------------------------------- poses and behaviours


class Pose(StrictModel):
    x: Coord
    y: Coord
    yaw: Angle = 0.0


class StaticBehavior(StrictModel):
    """Stays where it starts."""

    type: Literal["static"] = "static"


class ConstantVelocityBehavior(StrictModel):
    """Moves along its heading at `speed` (None = the agent's initial speed), turning at `yaw_rate`."""

    type: Literal["constant_velocity"] = "constant_velocity"
    speed: NonNegativeFloat | None = None
    yaw_rate: Angle = 0.0


class IdmBehavior(StrictModel):
    """Intelligent Driver Model along a lane route (lane ids, the first being the lane it starts on)."""

    type: Literal["idm"] = "idm"
    route: list[Id] = Field(min_length=1)
    desired_speed: PositiveFloat | None = None  # None = the lane's speed limit
    time_headway: PositiveFloat = 1.5
    min_gap: NonNegativeFloat = 2.0
    max_accel: PositiveFloat = 1.5
    comfortable_decel: PositiveFloat = 2.0
    delta: PositiveFloat = 4.0


class Waypoint(StrictModel):
    t: NonNegativeFloat  # seconds since the behaviour started
    x: Coord
    y: Coord
    yaw: Angle | None = None  # None = along the path


class WaypointsBehavior(StrictModel):
    """Follows timed waypoints (interpolated); holds the last one afterwards."""

    type: Literal["waypoints"] = "waypoints"
    points: list[Waypoint] = Field(min_length=2)
    interpolation: Literal["linear", "cubic"] = "linear"

    @field_validator("points")
    @classmethod
    def _increasing_times(cls, points: list[Waypoint]) -> list[Waypoint]:
        for i in range(1, len(points)):
            if points[i].t <= points[i - 1].t:
                raise ValueError(f"waypoint times must increase strictly (point {i}: {points[i].t})")
        return points


PlainBehavior = Annotated[
    StaticBehavior | ConstantVelocityBehavior | IdmBehavior | WaypointsBehavior, Field(discriminator="type")
]


class TriggerCondition(StrictModel):
    """Fires at `time` seconds (scenario time), or once the distance between the ego box centre and the
    agent's centre falls to `ego_distance` metres or less. Give exactly one."""

    time: NonNegativeFloat | None = None
    ego_distance: PositiveFloat | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TriggerCondition:
        if (self.time is None) == (self.ego_distance is None):
            raise ValueError("give exactly one of time or ego_distance")
        return self


class TriggerBehavior(StrictModel):
    """Runs `before` until the condition fires, then `after` (its times restart at the firing)."""

    type: Literal["trigger"] = "trigger"
    condition: TriggerCondition
    before: PlainBehavior = StaticBehavior()
    after: PlainBehavior


Behavior = Annotated[
    StaticBehavior | ConstantVelocityBehavior | IdmBehavior | WaypointsBehavior | TriggerBehavior,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------- agents and ego


class AgentSpec(StrictModel):
    """A road user (vehicles, pedestrians, cyclists, static objects). `size` = (length, width, height)."""

    id: Id
    category: str = "car"
    size: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None  # None = category default
    pose: Pose
    speed: NonNegativeFloat = 0.0
    behavior: Behavior = StaticBehavior()
    allow_overlap: bool = False  # an intentional overlap at t=0 with another box

    @field_validator("category")
    @classmethod
    def _known_category(cls, name: str) -> str:
        try:
            return CATEGORY_NAMES[category_id(name)]
        except KeyError as err:
            raise ValueError(err.args[0]) from None

    @property
    def dims(self) -> tuple[float, float, float]:
        """(length, width, height), filled in from the category when not given."""
        return self.size if self.size is not None else CATEGORIES[category_id(self.category)].size_lwh


class VehicleParams(StrictModel):
    """Ego vehicle: box, kinematic bicycle and limits. The ego origin is the rear axle."""

    length: PositiveFloat = 4.6
    width: PositiveFloat = 1.9
    height: PositiveFloat = 1.6
    wheelbase: PositiveFloat = 2.8
    rear_overhang: NonNegativeFloat = 0.9  # rear bumper to rear axle
    max_steer: PositiveFloat = 0.6  # rad
    max_steer_rate: PositiveFloat = 0.8  # rad/s
    max_accel: PositiveFloat = 3.0  # m/s^2
    max_decel: PositiveFloat = 8.0  # m/s^2, positive
    max_speed: PositiveFloat = 30.0  # m/s

    @model_validator(mode="after")
    def _fits_in_box(self) -> VehicleParams:
        if self.rear_overhang + self.wheelbase > self.length:
            raise ValueError("rear_overhang + wheelbase must not exceed length")
        return self

    @property
    def center_offset(self) -> float:
        """Distance from the rear axle forward to the box centre."""
        return self.length / 2 - self.rear_overhang


class EgoSpec(StrictModel):
    pose: Pose  # rear axle
    speed: NonNegativeFloat = 0.0
    route: list[Id] = []  # lane ids
    goal: Point2 | None = None
    vehicle: VehicleParams = VehicleParams()

    @model_validator(mode="after")
    def _route_or_goal(self) -> EgoSpec:
        if not self.route and self.goal is None:
            raise ValueError("give a route (lane ids) or a goal")
        return self


# ---------------------------------------------------------------- scene


class CameraSpec(StrictModel):
    name: Id
    intrinsics: list[list[FiniteFloat]]  # 3x3, pixels, for the rig's (height, width)
    cam_to_ego: list[list[FiniteFloat]]  # 4x4

    @field_validator("intrinsics")
    @classmethod
    def _is_3x3(cls, m: list[list[float]]) -> list[list[float]]:
        if len(m) != 3 or any(len(r) != 3 for r in m):
            raise ValueError("intrinsics must be a 3x3 matrix")
        return m

    @field_validator("cam_to_ego")
    @classmethod
    def _is_4x4(cls, m: list[list[float]]) -> list[list[float]]:
        if len(m) != 4 or any(len(r) != 4 for r in m):
            raise ValueError("cam_to_ego must be a 4x4 matrix")
        return m


class CameraRigSpec(StrictModel):
    """A preset rig by name at a size, or explicit cameras (OpenCV camera -> ego, pixel intrinsics)."""

    preset: str | None = "nuscenes"
    height: Annotated[int, Field(gt=0)] = 900
    width: Annotated[int, Field(gt=0)] = 1600
    cameras: list[CameraSpec] = []

    @model_validator(mode="after")
    def _preset_or_cameras(self) -> CameraRigSpec:
        if self.preset is None and not self.cameras:
            raise ValueError("give a preset name or a list of cameras")
        if self.preset is not None and self.cameras:
            raise ValueError("give a preset name or a list of cameras, not both")
        if self.preset is not None and self.preset not in CAMERA_RIG_PRESETS:
            raise ValueError(
                f"unknown camera rig preset {self.preset!r}; known: {', '.join(CAMERA_RIG_PRESETS)}"
            )
        return self


TimeOfDay = Literal["day", "dawn", "dusk", "night"]
Weather = Literal["clear", "cloudy", "rain", "fog", "snow"]


class SceneSpec(StrictModel):
    """What the world model is told: the text prompt and its structured parts."""

    text: str = ""  # empty = composed from the fields below
    time_of_day: TimeOfDay = "day"
    weather: Weather = "clear"
    place: str = "city street"

    @model_validator(mode="after")
    def _compose_text(self) -> SceneSpec:
        if not self.text.strip():
            weather = {"clear": "Clear", "cloudy": "Cloudy", "rain": "Rainy", "fog": "Foggy", "snow": "Snowy"}
            light = {"day": "daytime", "dawn": "dawn", "dusk": "dusk", "night": "night-time"}
            self.text = f"{weather[self.weather]} {light[self.time_of_day]} driving scene, {self.place}."
        return self


class Scenario(StrictModel):
    """A complete scenario. Building one runs every cross-field check (see `validate.py`)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: Id
    description: str = ""
    tags: list[str] = []
    duration: PositiveFloat = 20.0
    dt: PositiveFloat = 0.1
    seed: Annotated[int, Field(ge=0)] = 0
    camera_rig: CameraRigSpec = CameraRigSpec()
    scene: SceneSpec = SceneSpec()
    map: MapSpec
    ego: EgoSpec
    agents: list[AgentSpec] = []

    @field_validator("camera_rig", mode="before")
    @classmethod
    def _rig_from_name(cls, value: object) -> object:
        return {"preset": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_field_checks(self) -> Scenario:
        from cvd_sim.scenarios.validate import raise_if_invalid

        raise_if_invalid(self)
        return self

    def agent(self, agent_id: str) -> AgentSpec:
        for agent in self.agents:
            if agent.id == agent_id:
                return agent
        raise KeyError(f"no agent {agent_id!r}")

    @property
    def num_steps(self) -> int:
        """Number of simulation steps of length dt in the duration."""
        return round(self.duration / self.dt)
