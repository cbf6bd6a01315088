"""`WorldModelBackend`: the CVD-STORM world model as the env's camera renderer.

Per slot it keeps a short latent history (the last `num_references` frames, plus what depth needs), started from
a warm-up frame (raycast-rendered and encoded, or generated). Each `render`, batched over slots:
conditions at the new time (layout images, cameras relative to the window's first ego pose, the scenario
caption) -> DiT samples the new latent frame behind the references -> VAE decodes only that frame -> the
Gaussian decoder gives its depth. Every window is anchored at its own first frame, so the reference pose
re-anchors at every step and long episodes never leave the model's training range; memory stays flat.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from cvd_sim.envs.backend import SensorFrame
from cvd_sim.envs.worldmodel_options import parse_options
from cvd_sim.envs.worldmodel_sampler import sample_frames
from cvd_sim.scenarios.schema import Scenario

from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.transforms import invert_pose
from cvd_sim.models.dit_conditions import DiTConditions
from cvd_sim.pipelines import WorldConditions, WorldModel
from cvd_sim.sensors.layout import LayoutPainter
from cvd_sim.world.world import WorldSnapshot

TIMED_PHASES = ("warmup", "conditions", "dit", "decode", "depth")


@dataclass
class SlotHistory:
    """One env's recent frames: latents [V, C, h, w], ego poses [4, 4] float64, times s, layouts [V, 6, H, W]."""

    prompt: str
    painter: LayoutPainter
    generator: torch.Generator
    latents: deque = field(default_factory=deque)
    poses: deque = field(default_factory=deque)
    times: deque = field(default_factory=deque)
    layouts: deque = field(default_factory=deque)

    def push(self, latents: torch.Tensor, pose: np.ndarray, t: float, layout: torch.Tensor) -> None:
        for queue, item in zip(
            (self.latents, self.poses, self.times, self.layouts), (latents, pose, t, layout)
        ):
            queue.append(item)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[V, 3, H, W] in [-1, 1] -> uint8 [V, H, W, 3]."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class WorldModelBackend:
    """See the module docstring; options are `WorldModelOptions` fields. `timings` accumulates seconds per phase
    (`TIMED_PHASES`) for `cvd-sim bench env`."""

    name = "worldmodel"

    def __init__(self, rig: CameraRig, num_slots: int = 1, world_model: WorldModel | None = None, **options):
        self.rig = rig
        self.num_slots = int(num_slots)
        self.options = opts = parse_options(options)
        self.model = world_model or WorldModel.from_pretrained(opts.model_folder(), device=opts.device)
        ds = self.model.dit.config.latent_downscale
        patch = self.model.dit.config.patch_size
        if rig.height % (ds * patch) or rig.width % (ds * patch):
            raise ValueError(
                f"image size {rig.height}x{rig.width}: height and width must be multiples of {ds * patch} "
                f"for this world model (VAE x{ds}, DiT patch {patch})"
            )
        if not opts.channels_last:
            self.model.storm_vae.vae.to(memory_format=torch.contiguous_format)
        distilled = opts.use_distilled(self.model.dit_distilled is not None)
        if distilled and self.model.dit_distilled is None:
            raise ValueError(
                "backend_options.distilled: the world model has no dit_distilled/ (train one with "
                "`cvd-sim train dit --config tiny_distill`); use distilled=False"
            )
        self.num_steps = opts.steps(distilled)
        dit = self.model.dit_distilled if distilled else self.model.dit
        self.dit = torch.compile(dit) if opts.compile else dit
        self.cpu_bf16 = self.model.device.type == "cpu" and opts.use_cpu_bf16()
        self.intrinsics = torch.tensor(rig.intrinsics, dtype=torch.float32)  # [V, 3, 3]
        self.cam_to_ego = torch.tensor(rig.cam_to_ego, dtype=torch.float32)  # [V, 4, 4]
        self.history_length = max(opts.num_references, opts.depth_context)
        self.timings: dict[str, float] = defaultdict(float)
        self._slots: list[SlotHistory | None] = [None] * self.num_slots
        self._text: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._raycast = None
        if opts.warmup == "raycast":
            from cvd_sim.envs.raycast_backend import RaycastBackend

            self._raycast = RaycastBackend(rig, self.num_slots, opts.threads)

    @contextmanager
    def _timed(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] += time.perf_counter() - start

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cpu_bf16)

    # ------------------------------------------------------------ conditions

    def _num_refs(self, slot: SlotHistory) -> int:
        return min(len(slot.latents), self.options.num_references)

    def _text_embedding(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded caption (cached: a scenario's caption never changes) -> hidden [1, L, D], pooled [1, P]."""
        if prompt not in self._text:
            self._text[prompt] = self.model.encode_prompt([prompt])
        return self._text[prompt]

    def _layout(self, slot: SlotHistory, snap: WorldSnapshot) -> torch.Tensor:
        """[V, 6, H, W] layout images of the snapshot's boxes and the map, seen from the rig."""
        return slot.painter(snap.boxes_in_ego(), snap.categories, invert_pose(snap.ego_to_world))

    def _conditions(self, slots: list[SlotHistory], snaps: list[WorldSnapshot], layouts) -> DiTConditions:
        """DiT conditions of windows = each slot's history + its new frame, cameras relative to the window's
        first ego pose (poses made relative in float64 before going to float32)."""
        poses, window_layouts = [], []
        for slot, snap, layout in zip(slots, snaps, layouts):
            k = self._num_refs(slot)
            frames = [*list(slot.poses)[len(slot.poses) - k :], snap.ego_to_world]
            first = invert_pose(frames[0])
            poses.append(np.stack([first @ p for p in frames]))
            window_layouts.append(torch.stack([*list(slot.layouts)[len(slot.layouts) - k :], layout]))
        b, t, v = len(slots), len(poses[0]), self.rig.num_views
        hidden, pooled = zip(*(self._text_embedding(s.prompt) for s in slots))
        world = WorldConditions(
            prompt=[s.prompt for s in slots],
            intrinsics=self.intrinsics.expand(b, t, v, 3, 3),
            cam_to_ego=self.cam_to_ego.expand(b, t, v, 4, 4),
            ego_to_world=torch.tensor(np.stack(poses), dtype=torch.float32),
            height=self.rig.height,
            width=self.rig.width,
            layout=torch.stack(window_layouts),
        )
        window = {k: None if x is None else x.to(self.model.device) for k, x in world.window(0, t).items()}
        return DiTConditions(text_hidden=torch.cat(hidden), text_pooled=torch.cat(pooled), **window)

    # ------------------------------------------------------------ sampling, decoding, depth

    def _sample(self, slots: list[SlotHistory], snaps: list[WorldSnapshot], layouts) -> torch.Tensor:
        """One new latent frame per slot (slots share a history length) -> [B, V, C, h, w]."""
        opts, cfg = self.options, self.model.dit.config
        with self._timed("conditions"):
            cond = self._conditions(slots, snaps, layouts)
        shape = (
            1,
            self.rig.num_views,
            cfg.in_channels,
            self.rig.height // cfg.latent_downscale,
            self.rig.width // cfg.latent_downscale,
        )
        noise = torch.stack([torch.randn(shape, generator=s.generator) for s in slots])
        refs = [list(s.latents)[len(s.latents) - self._num_refs(s) :] for s in slots]
        refs = torch.stack([torch.stack(r) for r in refs]) if refs[0] else None
        with self._timed("dit"):
            return sample_frames(
                self.model,
                self.dit,
                cond,
                refs,
                noise,
                self.num_steps,
                opts.guidance_scale,
                opts.cfg_single_forward,
                self.cpu_bf16,
                opts.reference_cache,
                opts.shift,
            )[:, 0]

    def _depth(self, slots: list[SlotHistory]) -> torch.Tensor:
        """Depth of each slot's newest frame from its latest latents (slots share a history length)
        -> [B, V, H, W] metres, 0 = sky."""
        opts, h, w = self.options, self.rig.height, self.rig.width
        tc = 1 if opts.depth == "ray" else min(opts.depth_context, len(slots[0].latents))
        latents = torch.stack([torch.stack(list(s.latents)[-tc:]) for s in slots])  # [B, Tc, V, C, h, w]
        rel = []
        for s in slots:
            newest = invert_pose(s.poses[-1])
            rel.append(np.stack([newest @ p for p in list(s.poses)[-tc:]]))
        ego_to_ref = torch.tensor(np.stack(rel), dtype=torch.float32)  # [B, Tc, 4, 4]
        b, v = len(slots), self.rig.num_views
        cam_to_ref = ego_to_ref[:, :, None] @ self.cam_to_ego  # [B, Tc, V, 4, 4]
        intrinsics = self.intrinsics.expand(b, tc, v, 3, 3)
        times = torch.tensor([list(s.times)[-tc:] for s in slots], dtype=torch.float32)
        times = times - times[:, -1:]
        device = self.model.device
        decoder = self.model.storm_vae.gaussian_decoder
        with torch.no_grad():
            with self._autocast():  # the ViT and heads; the splat below runs in float32
                g = decoder.predict(
                    latents.to(device), intrinsics.to(device), cam_to_ref.to(device), times.to(device)
                )
            if opts.depth == "ray":  # z-depth of each pixel's Gaussian along its own ray
                return g["depth"][:, -1, :, 0].float().cpu()
            out = decoder.render_depth(
                g,
                intrinsics[:, -1:].to(device),
                cam_to_ref[:, -1:].to(device),
                times[:, -1:].to(device),
                h,
                w,
            )
        depth, alpha = out["depth"][:, 0, :, 0].float().cpu(), out["alpha"][:, 0, :, 0].float().cpu()
        return torch.where(alpha >= opts.sky_alpha, depth, torch.zeros_like(depth))

    def _frames(self, slots: list[SlotHistory], new_latents: torch.Tensor) -> list[SensorFrame]:
        """Decode the new frame [B, V, C, h, w] of each slot and reconstruct its depth."""
        with self._timed("decode"), self._autocast():
            images = self.model.decode(new_latents[:, None])[:, 0].float()  # [B, V, 3, H, W]
        frames = []
        with self._timed("depth"):
            depths = torch.empty(len(slots), self.rig.num_views, self.rig.height, self.rig.width)
            for group in _groups(slots, key=lambda s: len(s.latents)):
                depths[group] = self._depth([slots[i] for i in group])
        for img, depth in zip(images, depths):
            frames.append(SensorFrame(images=to_uint8(img), depth=depth.numpy().astype(np.float32)))
        return frames

    def _history_push(self, slot: SlotHistory, latents, snap: WorldSnapshot, layout) -> None:
        slot.push(latents.detach().cpu(), snap.ego_to_world.copy(), float(snap.time), layout)
        for queue in (slot.latents, slot.poses, slot.times, slot.layouts):
            while len(queue) > self.history_length:
                queue.popleft()

    @torch.no_grad()
    def latest_gaussians(self, slot: int) -> dict[str, torch.Tensor]:
        """The Gaussians of a slot's newest frame (one per pixel of its V views, from its latents alone), in
        the world frame: {"means", "scales": [N, 3], "quats": [N, 4] wxyz, "opacities": [N], "colors": [N, 3]
        in [0, 1], "velocities": [N, 3] m/s} with N = V * H * W, float64 means."""
        history = self._slots[slot]
        if history is None:
            raise RuntimeError(f"WorldModelBackend: slot {slot} has no frame yet (call reset)")
        v, device = self.rig.num_views, self.model.device
        g = self.model.storm_vae.gaussian_decoder.predict(
            history.latents[-1][None, None].to(device),
            self.intrinsics.expand(1, 1, v, 3, 3).to(device),
            self.cam_to_ego.expand(1, 1, v, 4, 4).to(device),
            torch.zeros(1, 1, device=device),
        )
        ego_to_world = torch.tensor(history.poses[-1], dtype=torch.float64)
        rotation = ego_to_world[:3, :3]
        out = {k: g[k][0].cpu() for k in ("scales", "opacities", "colors")}
        out["means"] = g["means"][0].cpu().double() @ rotation.T + ego_to_world[:3, 3]
        out["velocities"] = g["velocities"][0].cpu().double() @ rotation.T
        out["quats"] = rotate_quaternions(rotation, g["quats"][0].cpu())
        return out

    # ------------------------------------------------------------ backend interface

    def reset(self, slot: int, scenario: Scenario, snapshot: WorldSnapshot, seed: int) -> SensorFrame:
        rig = self.rig
        history = SlotHistory(
            prompt=scenario.scene.text,
            painter=LayoutPainter(scenario.map, rig.intrinsics, rig.cam_to_ego, rig.height, rig.width),
            generator=torch.Generator().manual_seed(int(seed)),
        )
        self._slots[slot] = history
        with self._timed("conditions"):
            layout = self._layout(history, snapshot)
        with self._timed("warmup"):
            if self._raycast is not None:
                frame = self._raycast.reset(slot, scenario, snapshot, seed)
                images = torch.from_numpy(frame.images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
                latents = self.model.encode(images[None, None])[0, 0]
            else:
                latents = self._sample([history], [snapshot], [layout])[0]
        self._history_push(history, latents, snapshot, layout)
        return self._frames([history], latents[None])[0]

    def render(self, requests: Sequence[tuple[int, WorldSnapshot]]) -> list[SensorFrame]:
        slots = []
        for index, _ in requests:
            if self._slots[index] is None:
                raise RuntimeError(f"WorldModelBackend: slot {index} rendered before reset")
            slots.append(self._slots[index])
        snaps = [snap for _, snap in requests]
        with self._timed("conditions"):
            layouts = [self._layout(s, snap) for s, snap in zip(slots, snaps)]
        new = [None] * len(requests)
        for group in _groups(slots, key=lambda s: len(s.latents)):  # batch slots with equal history
            latents = self._sample(
                [slots[i] for i in group], [snaps[i] for i in group], [layouts[i] for i in group]
            )
            for i, lat in zip(group, latents):
                new[i] = lat
        for slot, lat, snap, layout in zip(slots, new, snaps, layouts):
            self._history_push(slot, lat, snap, layout)
        return self._frames(slots, torch.stack(new))

    def close(self) -> None:
        self._slots = [None] * self.num_slots
        self._text.clear()
        if self._raycast is not None:
            self._raycast.close()


def rotate_quaternions(rotation: torch.Tensor, quats: torch.Tensor) -> torch.Tensor:
    """Quaternions [N, 4] wxyz of Gaussians in a frame -> the same Gaussians after `rotation` [3, 3]."""
    from scipy.spatial.transform import Rotation

    xyzw = quats.double().numpy()[:, [1, 2, 3, 0]]
    turned = (Rotation.from_matrix(rotation.numpy()) * Rotation.from_quat(xyzw)).as_quat()
    return torch.from_numpy(turned[:, [3, 0, 1, 2]]).to(quats.dtype)


def _groups(items: list, key) -> list[list[int]]:
    """Indices of items grouped by key (first-seen order)."""
    groups: dict = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    return list(groups.values())
