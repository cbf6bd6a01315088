"""`cvd-sim bench splat`: speed of `cvd_sim.splat.rasterize` on the CPU against a dense rasterizer, same run.

Three cases on the nuScenes rig: (a) 20k random Gaussians into 6 views of 64x112, also rendered by the dense
reference (every Gaussian against every pixel, torch autograd); (b) 170k pixel-aligned Gaussians (4 context
frames x 6 views x 64x112, as the Gaussian decoder emits) into 6 views of 128x224, forward + backward;
(c) the world-model env step's depth render: 129k pixel-aligned Gaussians (3 context frames x 6 views x
64x112) into the newest frame's 6 views at 64x112, render_mode "ED", without gradients. Cases (a) and (c) also
run the plain-torch references of the compiled kernels (`rasterize(..., cpu_kernels="torch")`).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint
from tqdm import tqdm

from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.rays import camera_rays
from cvd_sim.splat import rasterize
from cvd_sim.splat.projection import project_gaussians

DENSE_ELEMENTS = 1 << 22  # pixels x Gaussians per dense block


def register(subparsers) -> None:
    parser = subparsers.add_parser("splat", help="CPU rasterizer vs dense reference: ms/frame, Gaussians/s")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.set_defaults(func=handler)


def rig_cameras(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """nuScenes rig at (height, width): viewmats [6, 4, 4] ego->camera, Ks [6, 3, 3] (float32)."""
    rig = CameraRig.nuscenes(height, width)
    viewmats = torch.as_tensor(np.linalg.inv(rig.cam_to_ego), dtype=torch.float32)
    return viewmats, torch.as_tensor(rig.intrinsics, dtype=torch.float32)


def random_scene(n: int, seed: int) -> dict[str, torch.Tensor]:
    """n Gaussians around the ego car (3..40 m away, 0..3 m high), random shapes, opacities and colours."""
    g = torch.Generator().manual_seed(seed)
    radius = 3.0 + 37.0 * torch.rand(n, generator=g)
    angle = 2 * torch.pi * torch.rand(n, generator=g)
    height = 3.0 * torch.rand(n, generator=g)
    means = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle), height], dim=-1)
    return {
        "means": means,
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.exp(torch.empty(n, 3).uniform_(np.log(0.05), np.log(0.5), generator=g)),
        "opacities": 0.1 + 0.85 * torch.rand(n, generator=g),
        "colors": torch.rand(n, 3, generator=g),
    }


def pixel_aligned_scene(frames: int, height: int, width: int, seed: int) -> dict[str, torch.Tensor]:
    """One Gaussian per context pixel (frames x 6 views x height x width), placed on a ground plane / far wall.

    The ego drives forward 1.5 m per frame; scales match the pixel footprint at the Gaussian's depth.
    """
    g = torch.Generator().manual_seed(seed)
    rig = CameraRig.nuscenes(height, width)
    ks = torch.as_tensor(rig.intrinsics, dtype=torch.float32)
    cam_to_ego = torch.as_tensor(rig.cam_to_ego, dtype=torch.float32)
    means = []
    for f in range(frames):
        ego_to_world = torch.eye(4)
        ego_to_world[0, 3] = 1.5 * (f - frames + 1)  # the last context frame is the reference pose
        origins, dirs = camera_rays(ks, ego_to_world @ cam_to_ego, height, width)
        ground = torch.where(dirs[..., 2] < -1e-3, -origins[..., 2] / dirs[..., 2].clamp(max=-1e-3), 1e9)
        depth = ground.clamp(1.0, 40.0) * (1 + 0.05 * torch.randn(ground.shape, generator=g))
        means.append((origins + depth[..., None] * dirs).reshape(-1, 3))
    means = torch.cat(means)
    n = means.shape[0]
    depth_ego = (means[:, :2] - torch.tensor([1.5, 0.0])).norm(dim=-1).clamp(min=1.0)
    footprint = depth_ego / ks[0, 0, 0]
    scales = 0.5 * footprint[:, None] * torch.exp(0.3 * torch.randn(n, 3, generator=g))
    return {
        "means": means,
        "quats": torch.randn(n, 4, generator=g),
        "scales": scales,
        "opacities": 0.5 + 0.49 * torch.rand(n, generator=g),
        "colors": torch.rand(n, 3, generator=g),
    }


def _dense_block(px, py, mean2d, conic, opac, feats):
    """One block of pixels [P, 1] against all Gaussians [M] (depth-sorted) -> (Σ w·feats [P, F], Σ w [P])."""
    dx, dy = mean2d[:, 0] - px, mean2d[:, 1] - py
    sigma = 0.5 * (conic[:, 0] * dx * dx + conic[:, 2] * dy * dy) + conic[:, 1] * dx * dy
    alpha = torch.clamp(opac * torch.exp(-sigma), max=0.999)
    alpha = torch.where((sigma >= 0) & (alpha >= 1.0 / 255.0), alpha, torch.zeros_like(alpha))
    log1m = torch.log1p(-alpha)
    trans = torch.exp(torch.cumsum(log1m, dim=1) - log1m)
    weight = torch.where(trans * (1 - alpha) > 1e-4, alpha * trans, torch.zeros_like(alpha))
    return weight @ feats, weight.sum(1)


def dense_rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height):
    """Dense RGB+ED reference: every Gaussian against every pixel, front to back, plain torch autograd.

    Same projection and per-pixel rules as `rasterize`; means [N, 3] ... Ks [C, 3, 3] -> (renders, alphas).
    Blocks of pixels are checkpointed so that the backward fits in memory.
    """
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height, 0.01, 1e10, 0.3)
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    px, py = xs.reshape(-1, 1), ys.reshape(-1, 1)
    renders, alphas = [], []
    for cam in range(viewmats.shape[0]):
        idx = torch.nonzero(proj.valid[cam]).squeeze(1)
        idx = idx[torch.argsort(proj.depths[cam, idx].detach(), stable=True)]
        mean2d, conic = proj.means2d[cam, idx], proj.conics[cam, idx]
        feats = torch.cat([colors[idx], proj.depths[cam, idx, None]], dim=-1)
        opac = proj.opacities[cam, idx]
        rows = max(1, DENSE_ELEMENTS // max(1, idx.numel()))
        out, acc = [], []
        for start in range(0, px.shape[0], rows):
            o, a = checkpoint(
                _dense_block,
                px[start : start + rows],
                py[start : start + rows],
                mean2d,
                conic,
                opac,
                feats,
                use_reentrant=False,
            )
            out.append(o)
            acc.append(a)
        color, alpha_img = torch.cat(out), torch.cat(acc)[:, None]
        color = torch.cat([color[:, :3], color[:, 3:] / alpha_img.clamp(min=1e-10)], dim=1)
        renders.append(color.reshape(height, width, 4))
        alphas.append(alpha_img.reshape(height, width, 1))
    return torch.stack(renders), torch.stack(alphas)


def _ours(scene, viewmats, Ks, width, height, kernels="numba", mode="RGB+ED"):
    return rasterize(
        **scene, viewmats=viewmats, Ks=Ks, width=width, height=height, render_mode=mode, cpu_kernels=kernels
    )[:2]


def _torch(scene, viewmats, Ks, width, height):
    return _ours(scene, viewmats, Ks, width, height, kernels="torch")


def _ours_depth(scene, viewmats, Ks, width, height):
    return _ours(scene, viewmats, Ks, width, height, mode="ED")


def _torch_depth(scene, viewmats, Ks, width, height):
    return _ours(scene, viewmats, Ks, width, height, kernels="torch", mode="ED")


def _dense(scene, viewmats, Ks, width, height):
    return dense_rasterize(**scene, viewmats=viewmats, Ks=Ks, width=width, height=height)


def time_render(fn, scene, viewmats, Ks, width, height, repeats, progress, backward=True) -> dict[str, float]:
    """Median wall and process-CPU seconds of a forward pass without gradients (inference), and, with
    `backward`, of a forward pass that keeps what the backward needs and of forward + backward
    (loss = sum of renders and alphas). CPU time is reported because the machine may be shared."""
    samples: dict[str, list[float]] = {"forward_no_grad_s": [], "cpu_forward_no_grad_s": []}
    if backward:
        samples.update(
            {k: [] for k in ("forward_s", "forward_backward_s", "cpu_forward_s", "cpu_forward_backward_s")}
        )
    for _ in range(repeats):
        cpu0, start = time.process_time(), time.perf_counter()
        with torch.no_grad():
            fn(scene, viewmats, Ks, width, height)
        samples["forward_no_grad_s"].append(time.perf_counter() - start)
        samples["cpu_forward_no_grad_s"].append(time.process_time() - cpu0)
        progress.update(1)
        if not backward:
            continue
        leaves = {k: v.clone().requires_grad_(True) for k, v in scene.items()}
        cpu0, start = time.process_time(), time.perf_counter()
        renders, alphas = fn(leaves, viewmats, Ks, width, height)
        mid, cpu_mid = time.perf_counter(), time.process_time()
        (renders.nan_to_num().sum() + alphas.sum()).backward()
        end, cpu1 = time.perf_counter(), time.process_time()
        samples["forward_s"].append(mid - start)
        samples["forward_backward_s"].append(end - start)
        samples["cpu_forward_s"].append(cpu_mid - cpu0)
        samples["cpu_forward_backward_s"].append(cpu1 - cpu0)
        progress.update(1)
    return {k: statistics.median(v) for k, v in samples.items()}


def _row(size, method, n, viewmats, height, width, timing) -> dict:
    """One table row; the figures of a forward-only case (no backward timed) are None."""

    def ms(key):
        return None if key not in timing else 1000 * timing[key]

    return {
        "size": size,
        "method": method,
        "gaussians": n,
        "views": int(viewmats.shape[0]),
        "height": height,
        "width": width,
        "ms_per_frame_forward_no_grad": ms("forward_no_grad_s"),
        "ms_per_frame_forward": ms("forward_s"),
        "ms_per_frame_forward_backward": ms("forward_backward_s"),
        "gaussians_per_s_forward_no_grad": n / timing["forward_no_grad_s"],
        "gaussians_per_s_forward": n / timing["forward_s"] if "forward_s" in timing else None,
        "gaussians_per_s_forward_backward": (
            n / timing["forward_backward_s"] if "forward_backward_s" in timing else None
        ),
        "cpu_s_forward_no_grad": timing["cpu_forward_no_grad_s"],
        "cpu_s_forward": timing.get("cpu_forward_s"),
        "cpu_s_forward_backward": timing.get("cpu_forward_backward_s"),
    }


def _fmt(value, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def handler(args) -> int:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    repeats = max(1, args.repeats)
    small_cams = rig_cameras(64, 112)
    large_cams = rig_cameras(128, 224)
    small = random_scene(20_000, args.seed)
    large = pixel_aligned_scene(4, 64, 112, args.seed)
    depth = pixel_aligned_scene(3, 64, 112, args.seed)  # the last context frame is the rig's pose
    # (size, method, fn, scene, cameras, width, height, backward timed, repeats)
    cases = [
        ("random 20k -> 6x64x112", "ours", _ours, small, small_cams, 112, 64, True, repeats),
        ("random 20k -> 6x64x112", "dense", _dense, small, small_cams, 112, 64, True, 1),
        ("random 20k -> 6x64x112", "torch", _torch, small, small_cams, 112, 64, True, repeats),
        ("pixel-aligned 172k -> 6x128x224", "ours", _ours, large, large_cams, 224, 128, True, repeats),
        ("depth ED 129k -> 6x64x112", "ours", _ours_depth, depth, small_cams, 112, 64, False, repeats),
        ("depth ED 129k -> 6x64x112", "torch", _torch_depth, depth, small_cams, 112, 64, False, repeats),
    ]
    rows = []
    total = sum(c[-1] * (2 if c[-2] else 1) for c in cases)
    with tqdm(total=total, desc="bench splat", unit="run") as progress:
        for size, method, fn, scene, (viewmats, Ks), width, height, backward, reps in cases:
            # untimed warm-up on a slice of the scene (lazy imports, allocator, thread pool)
            fn({k: v[:1000] for k, v in scene.items()}, viewmats, Ks, width, height)
            timing = time_render(fn, scene, viewmats, Ks, width, height, reps, progress, backward)
            rows.append(_row(size, method, scene["means"].shape[0], viewmats, height, width, timing))
    ours_small, dense_small, torch_small = rows[0], rows[1], rows[2]
    ours_depth, torch_depth = rows[4], rows[5]

    def speedup(key):
        return dense_small[key] / ours_small[key]

    def over_torch(key):
        return torch_small[key] / ours_small[key]

    result = {
        "threads": torch.get_num_threads(),
        "rows": rows,
        "speedup_over_dense_forward_no_grad": speedup("ms_per_frame_forward_no_grad"),
        "speedup_over_dense_forward": speedup("ms_per_frame_forward"),
        "speedup_over_dense_forward_backward": speedup("ms_per_frame_forward_backward"),
        "speedup_over_dense_cpu_time": speedup("cpu_s_forward_backward"),
        "speedup_over_dense_cpu_time_forward_no_grad": speedup("cpu_s_forward_no_grad"),
        "speedup_over_dense_cpu_time_forward": speedup("cpu_s_forward"),
        "speedup_over_torch_kernels_forward_no_grad": over_torch("ms_per_frame_forward_no_grad"),
        "speedup_over_torch_kernels_forward_backward": over_torch("ms_per_frame_forward_backward"),
        "speedup_over_torch_kernels_depth": (
            torch_depth["ms_per_frame_forward_no_grad"] / ours_depth["ms_per_frame_forward_no_grad"]
        ),
        "targets": {"speedup_over_dense_min": 20.0, "large_forward_backward_s_max": 1.5},
    }
    header = (
        f"{'size':<34}{'method':<7}{'ms: no-grad fwd':>16}{'fwd':>8}{'fwd+bwd':>9}"
        f"{'CPU s: no-grad fwd':>19}{'fwd':>7}{'fwd+bwd':>9}{'Gauss/s no-grad':>16}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['size']:<34}{r['method']:<7}{r['ms_per_frame_forward_no_grad']:>16.1f}"
            f"{_fmt(r['ms_per_frame_forward'], '.1f', 8)}{_fmt(r['ms_per_frame_forward_backward'], '.1f', 9)}"
            f"{r['cpu_s_forward_no_grad']:>19.3f}{_fmt(r['cpu_s_forward'], '.3f', 7)}"
            f"{_fmt(r['cpu_s_forward_backward'], '.3f', 9)}{r['gaussians_per_s_forward_no_grad']:>16.3g}"
        )
    print(
        "speed-up over dense at 6x64x112 (wall | CPU time): "
        f"forward without grad {result['speedup_over_dense_forward_no_grad']:.1f}x | "
        f"{result['speedup_over_dense_cpu_time_forward_no_grad']:.1f}x, "
        f"forward with grad {result['speedup_over_dense_forward']:.1f}x | "
        f"{result['speedup_over_dense_cpu_time_forward']:.1f}x, "
        f"forward+backward {result['speedup_over_dense_forward_backward']:.1f}x | "
        f"{result['speedup_over_dense_cpu_time']:.1f}x  (threads: {result['threads']}; a frame = all 6 views)"
    )
    print(
        "compiled kernels over their plain-torch references (wall): "
        f"forward without grad {result['speedup_over_torch_kernels_forward_no_grad']:.1f}x, "
        f"forward+backward {result['speedup_over_torch_kernels_forward_backward']:.1f}x, "
        f"env depth {result['speedup_over_torch_kernels_depth']:.1f}x"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0
