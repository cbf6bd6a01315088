"""View the 3DGS `.ply` frames written by `cvd-sim export-gaussians` with open3d.

    cvd-sim export-gaussians --steps 20 --out out/gaussians
    .venv/bin/python examples/view_gaussians.py out/gaussians              # window: N / P = next / previous frame
    .venv/bin/python examples/view_gaussians.py out/gaussians --list      # no window: points and bounds per frame

Each Gaussian is shown as a point at its mean, coloured by its degree-0 colour, skipping nearly transparent
ones; the world grid is the first ego pose (x forward, y left, z up, metres).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import open3d as o3d

from cvd_sim.splat.ply import load_gaussians_ply


def point_cloud(path: Path, min_opacity: float, max_range: float) -> o3d.geometry.PointCloud:
    """An open3d point cloud of the Gaussians in one .ply (means coloured by their colours)."""
    g = load_gaussians_ply(path)
    means, colors = g["means"].numpy().astype(np.float64), g["colors"].numpy().astype(np.float64)
    keep = (g["opacities"].numpy() >= min_opacity) & (np.linalg.norm(means, axis=1) <= max_range)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(means[keep]))
    cloud.colors = o3d.utility.Vector3dVector(np.clip(colors[keep], 0.0, 1.0))
    return cloud


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of frame_XXXX.ply files")
    parser.add_argument("--min-opacity", type=float, default=0.05)
    parser.add_argument("--max-range", type=float, default=120.0, help="m from the first ego pose")
    parser.add_argument("--list", action="store_true", help="print points and bounds per frame, no window")
    args = parser.parse_args()
    frames = sorted(args.folder.glob("frame_*.ply"))
    if not frames:
        raise SystemExit(f"{args.folder}: no frame_*.ply files (write them with `cvd-sim export-gaussians`)")
    if args.list:
        for path in frames:
            cloud = point_cloud(path, args.min_opacity, args.max_range)
            box = cloud.get_axis_aligned_bounding_box()
            print(
                f"{path.name}: {len(cloud.points)} points, bounds {box.min_bound.round(1)} .. {box.max_bound.round(1)}"
            )
        return

    state = {"index": 0}
    vis = o3d.visualization.VisualizerWithKeyCallback()
    vis.create_window(f"cvd-sim Gaussians: {args.folder}")
    vis.add_geometry(point_cloud(frames[0], args.min_opacity, args.max_range))
    vis.add_geometry(o3d.geometry.TriangleMesh.create_coordinate_frame(size=2.0))

    def show(step: int):
        def callback(v) -> bool:
            state["index"] = (state["index"] + step) % len(frames)
            v.clear_geometries()
            v.add_geometry(point_cloud(frames[state["index"]], args.min_opacity, args.max_range), False)
            v.add_geometry(o3d.geometry.TriangleMesh.create_coordinate_frame(size=2.0), False)
            print(frames[state["index"]].name)
            return True

        return callback

    vis.register_key_callback(ord("N"), show(1))
    vis.register_key_callback(ord("P"), show(-1))
    vis.run()
    vis.destroy_window()


if __name__ == "__main__":
    main()
