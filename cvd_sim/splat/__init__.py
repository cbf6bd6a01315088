"""Gaussian splatting: one rasterize() (gsplat on CUDA, a CPU rasterizer with its semantics), 3DGS PLY."""
