"""`cvd-sim bench layout`: time to draw the six layout images of one frame, ours vs a per-segment loop.

Scene: the busiest library scenario's map around its ego start, plus `--boxes` random boxes within 50 m.
"ours" = `cvd_sim.sensors.layout.draw_layout` (vectorised over segments and views); "loop" = the same
segments near-clipped and projected one by one and drawn with PIL `ImageDraw.line`, as a straightforward
implementation would. Both run in the same process, side by side; the median of `--repeats` runs is reported.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.transforms import apply_transform, invert_pose, pose_from_xyz_yaw
from cvd_sim.scenarios.categories import CATEGORIES
from cvd_sim.scenarios.io import load_scenario
from cvd_sim.scenarios.library import LIBRARY_DIR, library_paths
from cvd_sim.sensors.layout import (
    MAP_CHANNEL,
    MAX_DISTANCE,
    NEAR_PLANE,
    box_segments,
    clip_segments_to_disc,
    draw_layout,
    map_segments,
)

BUDGET_MS = 50.0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "layout", help="layout images: ms per 6-view frame, vectorised vs per-segment loop"
    )
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=448)
    parser.add_argument("--boxes", type=int, default=40, help="random boxes added around the ego")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per method (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.set_defaults(func=handler)


def bench_scene(num_boxes: int, seed: int):
    """(boxes [N, 7] ego, categories [N], map starts [S, 3], ends [S, 3], types [S] ego frame, scenario name)."""
    scenarios = [load_scenario(p) for p in library_paths()]
    if not scenarios:
        raise FileNotFoundError(f"no scenarios in {LIBRARY_DIR}")
    busiest = max(scenarios, key=lambda s: len(map_segments(s.map)[0]))
    ego = busiest.ego.pose
    world_to_ego = invert_pose(pose_from_xyz_yaw(ego.x, ego.y, 0.0, ego.yaw))
    starts, ends, types = map_segments(busiest.map)
    rng = np.random.default_rng(seed)
    cats = rng.integers(0, len(CATEGORIES), num_boxes)
    lwh = np.array([CATEGORIES[c].size_lwh for c in cats])
    radius, angle = rng.uniform(4.0, 50.0, num_boxes), rng.uniform(-np.pi, np.pi, num_boxes)
    boxes = np.column_stack(
        [
            radius * np.cos(angle),
            radius * np.sin(angle),
            lwh[:, 2] / 2,
            lwh,
            rng.uniform(-np.pi, np.pi, num_boxes),
        ]
    )
    return (
        boxes,
        cats,
        apply_transform(world_to_ego, starts),
        apply_transform(world_to_ego, ends),
        types,
        busiest.name,
    )


def loop_layout(boxes, cats, starts, ends, types, rig: CameraRig) -> np.ndarray:
    """Reference: per view, per segment: near-clip, project, PIL line. [V, 6, H, W] float32."""
    s, e, keep = clip_segments_to_disc(starts, ends, MAX_DISTANCE)
    seg_list = [
        (a, b, MAP_CHANNEL[int(t)], None)
        for a, b, t, k in zip(s, e, types, keep)
        if k and int(t) in MAP_CHANNEL
    ]
    bs, be = box_segments(boxes)
    for i, (a, b) in enumerate(zip(bs, be)):
        seg_list.append((a, b, None, CATEGORIES[cats[i // 14]].color_rgb))
    out = np.zeros((rig.num_views, 6, rig.height, rig.width), np.float32)
    for v in range(rig.num_views):
        ego_to_cam = np.linalg.inv(rig.cam_to_ego[v])
        k = rig.intrinsics[v]
        channels = [Image.new("L", (rig.width, rig.height)) for _ in range(3)]
        box_rgb = Image.new("RGB", (rig.width, rig.height))
        draws = [ImageDraw.Draw(c) for c in channels]
        box_draw = ImageDraw.Draw(box_rgb)
        for a, b, channel, colour in seg_list:
            pa, pb = ego_to_cam[:3, :3] @ a + ego_to_cam[:3, 3], ego_to_cam[:3, :3] @ b + ego_to_cam[:3, 3]
            if pa[2] < NEAR_PLANE and pb[2] < NEAR_PLANE:
                continue
            if pa[2] < NEAR_PLANE:
                pa = pa + (NEAR_PLANE - pa[2]) / (pb[2] - pa[2]) * (pb - pa)
            elif pb[2] < NEAR_PLANE:
                pb = pb + (NEAR_PLANE - pb[2]) / (pa[2] - pb[2]) * (pa - pb)
            ua, ub = (k @ pa)[:2] / pa[2], (k @ pb)[:2] / pb[2]
            line = [tuple(ua), tuple(ub)]
            if colour is None:
                draws[channel - 3].line(line, fill=255, width=2)
            else:
                box_draw.line(line, fill=colour, width=2)
        out[v, :3] = np.asarray(box_rgb, np.float32).transpose(2, 0, 1) / 255.0
        for c in range(3):
            out[v, 3 + c] = np.asarray(channels[c], np.float32) / 255.0
    return out


def _median_ms(fn, repeats: int, progress) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
        progress.update(1)
    return statistics.median(times)


def handler(args) -> int:
    rig = CameraRig.nuscenes(args.height, args.width)
    boxes, cats, starts, ends, types, name = bench_scene(args.boxes, args.seed)

    def ours():
        return draw_layout(
            boxes, cats, starts, ends, types, rig.intrinsics, rig.cam_to_ego, rig.height, rig.width
        )

    def loop():
        return loop_layout(boxes, cats, starts, ends, types, rig)

    ours(), loop()  # warm-up, untimed
    repeats = max(1, args.repeats)
    with tqdm(total=2 * repeats, desc="bench layout", unit="run") as progress:
        ours_ms = _median_ms(ours, repeats, progress)
        loop_ms = _median_ms(loop, repeats, progress)
    agreement = float(((ours().numpy() > 0) == (loop() > 0)).mean())
    result = {
        "scenario": name,
        "views": rig.num_views,
        "height": rig.height,
        "width": rig.width,
        "boxes": len(boxes),
        "map_segments": len(starts),
        "ours_ms_per_frame": ours_ms,
        "loop_ms_per_frame": loop_ms,
        "speedup_over_loop": loop_ms / ours_ms,
        "budget_ms": BUDGET_MS,
        "within_budget": ours_ms < BUDGET_MS,
        "pixel_agreement_with_loop": agreement,
    }
    print(
        f"layout images, {rig.num_views} views x {rig.height}x{rig.width}, {len(boxes)} boxes, "
        f"{len(starts)} map segments ({name})"
    )
    print(f"{'method':<8}{'ms/frame':>10}")
    print(f"{'ours':<8}{ours_ms:>10.2f}")
    print(f"{'loop':<8}{loop_ms:>10.2f}")
    print(
        f"speed-up {loop_ms / ours_ms:.1f}x; budget {BUDGET_MS:.0f} ms: {'met' if ours_ms < BUDGET_MS else 'MISSED'}; "
        f"pixel agreement with the loop {100 * agreement:.2f}%"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0
