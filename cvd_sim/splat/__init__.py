"""Gaussian splatting: one rasterize() (gsplat on CUDA, a CPU rasterizer with its semantics), 3DGS PLY."""

from cvd_sim.splat.ply import load_gaussians_ply, save_gaussians_ply
from cvd_sim.splat.rasterize import RENDER_MODES, rasterize

__all__ = ["RENDER_MODES", "load_gaussians_ply", "rasterize", "save_gaussians_ply"]
