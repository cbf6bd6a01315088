"""`DrivingEnv`: the Gymnasium environment. Each step: dynamics -> traffic -> metrics (the World) -> reward ->
sensors at the new time (the render backend).

    env = gym.make("cvd_sim.envs:cvd_sim/Raycast-v0", scenario="builder:cut_in", control="waypoints")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Observation (`observation.py`): images uint8 [V, H, W, 3], depth float32 [V, H, W] metres, ego features,
optional privileged boxes and map. Action: `accel_steer` Box [2] (m/s^2, rad) or `waypoints` Box [K, 2]
(ego frame, m). NaN/inf or a wrong shape raise `ValueError`; out-of-range values are clipped and
`info["action_clipped"]` is True. `info` carries the step metrics, the boxes, the ego pose and, at the end of
an episode, `episode_scores` (nuPlan score, PDMS, route completion, arena score and their parts).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from cvd_sim.envs.backend import SensorFrame, make_backend
from cvd_sim.envs.config import EnvConfig, make_env_config
from cvd_sim.envs.frame import compose_frame
from cvd_sim.envs.observation import MapFeatures, ego_features, observation_space, privileged_boxes
from cvd_sim.envs.reward import StepOutcome, step_outcome
from cvd_sim.envs.scenario_info import ScenarioInfo
from cvd_sim.envs.scenario_source import resolve_scenario
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.schema import Scenario
from gymnasium import spaces

from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.transforms import invert_pose
from cvd_sim.viz.bev import BevMap, bev_panel
from cvd_sim.world.control import AccelSteer, WaypointTrajectory
from cvd_sim.world.world import World, WorldSnapshot

WAYPOINT_MAX_SPEED = 40.0  # m/s, sets the forward bound of the waypoint action box
WAYPOINT_LATERAL = 50.0  # m, lateral bound of the waypoint action box
MIN_BEV_SIZE = 192


def _as_config(config: EnvConfig | dict | None, fields: dict[str, Any]) -> EnvConfig:
    if isinstance(config, EnvConfig):
        return make_env_config("DrivingEnv", **{**dict(config), **fields}) if fields else config
    return make_env_config("DrivingEnv", **{**(config or {}), **fields})


def camera_rig(config: EnvConfig) -> CameraRig:
    """The nuScenes rig at the configured image size, restricted to the configured cameras (in that order)."""
    return CameraRig.nuscenes(config.image_height, config.image_width).select(config.cameras)


def action_space(config: EnvConfig) -> spaces.Box:
    if config.control == "accel_steer":
        return spaces.Box(
            np.array([-config.max_decel, -config.max_steer], np.float32),
            np.array([config.max_accel, config.max_steer], np.float32),
            dtype=np.float32,
        )
    k = config.num_waypoints
    reach = WAYPOINT_MAX_SPEED * k * config.waypoint_interval
    low = np.tile(np.array([-10.0, -WAYPOINT_LATERAL], np.float32), (k, 1))
    high = np.tile(np.array([reach, WAYPOINT_LATERAL], np.float32), (k, 1))
    return spaces.Box(low, high, dtype=np.float32)


class DrivingEnv(gym.Env):
    """See the module docstring. `shared_backend`/`slot`: a shared backend and this env's slot in it (the batched
    vector env passes them); by default the env builds its own one-slot backend."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        config: EnvConfig | dict | None = None,
        render_mode: str | None = None,
        shared_backend=None,
        slot: int = 0,
        **fields,
    ):
        self.config = cfg = _as_config(config, fields)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.rig = camera_rig(cfg)
        self.observation_space = observation_space(cfg)
        self.action_space = action_space(cfg)
        self.waypoint_times = cfg.waypoint_interval * np.arange(1, cfg.num_waypoints + 1)
        self._owns_backend = shared_backend is None
        self.backend = shared_backend
        if shared_backend is None and cfg.sensors:
            self.backend = make_backend(cfg.backend, self.rig, 1, cfg.backend_options)
        self.slot = slot
        self._refs = cfg.scenario_list()
        self._resolved: dict[int, Scenario] = {}
        self._first_reset = True
        self.world: World | None = None
        self.scenario: Scenario | None = None
        self._frame: SensorFrame | None = None
        self._map_features: MapFeatures | None = None
        self._bev_map: BevMap | None = None
        self._over = False

    # ------------------------------------------------------------ reset

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.prepare_reset(seed=seed, options=options)
        frame = (
            self.backend.reset(self.slot, self.scenario, self._snap, self.world.seed)
            if self.config.sensors
            else None
        )
        return self.finish_reset(frame)

    def prepare_reset(self, seed: int | None = None, options: dict | None = None) -> WorldSnapshot:
        """First half of `reset`: seed, pick the scenario, build the world; returns the first snapshot."""
        if seed is None and self._first_reset:
            seed = self.config.seed
        self._first_reset = False
        super().reset(seed=seed)
        options = options or {}
        if "scenario" in options:
            scenario = resolve_scenario(options["scenario"])
        else:
            index = 0 if len(self._refs) == 1 else int(self.np_random.integers(len(self._refs)))
            if index not in self._resolved:
                self._resolved[index] = resolve_scenario(self._refs[index])
            scenario = self._resolved[index]
        world_seed = (
            int(self.np_random.integers(2**31 - 1)) if self.config.randomize_traffic else scenario.seed
        )
        if scenario is not self.scenario:
            self._map_features = MapFeatures(road_map(scenario.map)) if self.config.privileged else None
            self._bev_map = None
        self.scenario = scenario
        self.world = World.from_scenario(scenario, seed=world_seed)
        self.horizon = min(self.config.max_steps or scenario.num_steps, scenario.num_steps)
        self._over = False
        self._outcome: StepOutcome | None = None
        self._clipped = False
        self._snap = self.world.snapshot()
        self._trail = [self._snap.ego_to_world[:2, 3].copy()]
        return self._snap

    def finish_reset(self, frame: SensorFrame | None):
        """Second half of `reset`: the first observation and info from the backend's first frame."""
        self._frame = frame
        return self._observation(), self._info()

    # ------------------------------------------------------------ step

    def step(self, action):
        snap = self.advance(action)
        frame = self.backend.render([(self.slot, snap)])[0] if self.config.sensors else None
        return self.finish_step(frame)

    def control_from_action(self, action) -> tuple[AccelSteer | WaypointTrajectory, bool]:
        """Validate an action: (control for the World, whether it was clipped). Raises ValueError when the
        action has the wrong shape or is not finite."""
        space = self.action_space
        try:
            values = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"action must be numbers of shape {space.shape}: {err}") from None
        if values.shape != space.shape:
            raise ValueError(
                f"action must have shape {space.shape} for control {self.config.control!r}, got {values.shape}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"action contains NaN or inf: {values.tolist()}")
        clipped = np.clip(values, space.low, space.high)
        was_clipped = not np.array_equal(clipped, values)
        if self.config.control == "accel_steer":
            return AccelSteer(float(clipped[0]), float(clipped[1])), was_clipped
        return WaypointTrajectory(clipped, self.waypoint_times), was_clipped

    def advance(self, action) -> WorldSnapshot:
        """First half of `step`: validate the action, move the world, compute reward and flags; returns the
        snapshot the sensors must show."""
        control, self._clipped = self.control_from_action(action)
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        if self._over:
            raise RuntimeError("the episode is over (terminated or truncated); call reset()")
        world = self.world
        self._snap = world.step(control)
        self._trail.append(self._snap.ego_to_world[:2, 3].copy())
        cfg = self.config
        self._outcome = step_outcome(
            world.records, world.route.length, cfg.reward, cfg.offroad_tolerance, cfg.goal_tolerance
        )
        self._truncated = world.step_index >= self.horizon and not self._outcome.terminated
        self._over = self._outcome.terminated or self._truncated
        return self._snap

    def finish_step(self, frame: SensorFrame | None):
        """Second half of `step`: observation, reward, terminated, truncated, info."""
        self._frame = frame
        out = self._outcome
        return self._observation(), out.reward, out.terminated, self._truncated, self._info()

    # ------------------------------------------------------------ observation and info

    def _observation(self) -> dict[str, np.ndarray]:
        snap, cfg = self._snap, self.config
        obs: dict[str, np.ndarray] = {}
        if cfg.sensors:
            obs["images"] = np.ascontiguousarray(self._frame.images, dtype=np.uint8)
            obs["depth"] = np.ascontiguousarray(self._frame.depth, dtype=np.float32)
        obs["ego"] = ego_features(snap, self.world.route)
        if cfg.privileged:
            obs.update(privileged_boxes(snap, cfg.max_boxes, cfg.perception_range))
            world_to_ego = invert_pose(snap.ego_to_world)
            obs["map"], obs["map_types"] = self._map_features.polylines(
                world_to_ego,
                snap.ego_to_world[:2, 3],
                cfg.perception_range,
                cfg.max_polylines,
                cfg.polyline_points,
            )
        return obs

    def _info(self) -> dict[str, Any]:
        snap, n = self._snap, self.config.max_boxes
        ego = snap.ego
        boxes = np.zeros((n, 7))
        vel = np.zeros((n, 2))
        cats = np.full(n, -1, np.int64)
        if len(snap.boxes):
            order = np.argsort(np.hypot(*(snap.boxes[:, :2] - [ego.x, ego.y]).T), kind="stable")[:n]
            boxes[: len(order)], vel[: len(order)], cats[: len(order)] = (
                snap.boxes[order],
                snap.velocities[order],
                snap.categories[order],
            )
        info: dict[str, Any] = {
            "scenario": self.scenario.name,
            "step": snap.step,
            "time": snap.time,
            "ego_to_world": snap.ego_to_world.copy(),
            "ego_box": snap.ego_box.copy(),
            "ego_state": np.array([ego.x, ego.y, ego.yaw, ego.speed, ego.accel, ego.steering, ego.yaw_rate]),
            "boxes": boxes,
            "box_velocities": vel,
            "box_categories": cats,
            "num_boxes": len(snap.boxes),
            "action_clipped": self._clipped,
        }
        if self._outcome is not None:
            rec, out = self.world.records[-1], self._outcome
            info["metrics"] = {
                "speed": rec.speed,
                "accel": rec.accel,
                "yaw_rate": rec.yaw_rate,
                "offroad_distance": rec.offroad_distance,
                "lane_progress": rec.lane_progress,
                "route_progress": rec.route_progress,
                "expert_progress": rec.expert_progress,
                "route_completion": float(np.clip(rec.route_progress / self.world.route.length, 0.0, 1.0)),
                "ttc": rec.ttc,
                "speed_limit": float("nan") if rec.speed_limit is None else rec.speed_limit,
                "collisions": len(rec.collisions),
                "at_fault_collisions": sum(c.at_fault for c in rec.collisions),
                "wrong_way": out.wrong_way,
                "uncomfortable": out.uncomfortable,
            }
            info["collided"], info["offroad"], info["goal_reached"] = (
                out.collided,
                out.offroad,
                out.goal_reached,
            )
            if self._over:
                info["episode_scores"] = self.world.scores().as_dict()
        return info

    def scenario_info(self) -> ScenarioInfo:
        """What a planner's `reset` receives (valid after `reset`)."""
        if self.world is None:
            raise RuntimeError("call reset() first")
        route = self.world.route
        goal = self.scenario.ego.goal
        return ScenarioInfo(
            scenario=self.scenario,
            road_map=self.world.road_map,
            route=route,
            goal=np.asarray(goal if goal is not None else route.path.xy(route.s_end), np.float64),
            dt=self.world.dt,
            vehicle=self.world.vehicle,
            control=self.config.control,
            waypoint_times=self.waypoint_times.copy(),
        )

    # ------------------------------------------------------------ render

    def bev(self, size: int = 256) -> np.ndarray:
        """uint8 [size, size, 3] BEV panel of the current state with the route and the ego's trail."""
        if self._bev_map is None:
            rmap = self.world.road_map
            lines = [np.asarray(line.polyline) for line in rmap.spec.road_lines]
            lines += [np.asarray(edge.polyline) for edge in rmap.spec.road_edges]
            self._bev_map = BevMap.from_geometry(rmap.drivable_area, lines)
        snap = self._snap
        return bev_panel(
            self._bev_map,
            snap.ego_to_world,
            snap.ego_box,
            snap.boxes,
            snap.categories,
            route=self.world.route.path.points,
            trail=np.array(self._trail),
            size=size,
        )

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode='rgb_array'")
            return None
        if self.world is None:
            raise RuntimeError("call reset() before render()")
        return compose_frame(self._frame, self.bev, MIN_BEV_SIZE)

    def close(self) -> None:
        if self._owns_backend and self.backend is not None:
            self.backend.close()
        super().close()
