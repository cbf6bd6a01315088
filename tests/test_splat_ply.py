"""3DGS PLY export/import: layout, round trip, and open3d reading the points."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest
import torch
from plyfile import PlyData

from cvd_sim.splat import load_gaussians_ply, save_gaussians_ply
from cvd_sim.splat.ply import PLY_PROPERTIES, SH_C0


def gaussians(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    quats = torch.randn(n, 4, generator=g)
    return {
        "means": torch.randn(n, 3, generator=g) * 10,
        "quats": quats,
        "scales": torch.rand(n, 3, generator=g) * 2 + 0.01,
        "opacities": torch.rand(n, generator=g) * 0.98 + 0.01,
        "colors": torch.rand(n, 3, generator=g),
    }


def test_layout_is_the_3dgs_one(tmp_path):
    gs = gaussians()
    path = save_gaussians_ply(tmp_path / "g.ply", **gs)
    ply = PlyData.read(str(path))
    vertex = ply["vertex"]
    assert [p.name for p in vertex.properties] == list(PLY_PROPERTIES)
    assert all(p.val_dtype in ("f4", "float32") for p in vertex.properties)
    assert not ply.text and ply.byte_order == "<"
    # activations: opacity is a logit, scales are logs, colours are degree-0 SH coefficients
    o = gs["opacities"][3].item()
    assert vertex["opacity"][3] == pytest.approx(np.log(o / (1 - o)), abs=1e-5)
    assert vertex["scale_1"][3] == pytest.approx(np.log(gs["scales"][3, 1].item()), abs=1e-5)
    assert vertex["f_dc_2"][3] == pytest.approx((gs["colors"][3, 2].item() - 0.5) / SH_C0, abs=1e-5)
    q = gs["quats"][3] / gs["quats"][3].norm()
    assert vertex["rot_0"][3] == pytest.approx(q[0].item(), abs=1e-6)


def test_round_trip(tmp_path):
    gs = gaussians(seed=1)
    back = load_gaussians_ply(save_gaussians_ply(tmp_path / "g.ply", **gs))
    assert torch.allclose(back["means"], gs["means"], atol=1e-5)
    assert torch.allclose(back["quats"], torch.nn.functional.normalize(gs["quats"], dim=-1), atol=1e-6)
    assert torch.allclose(back["scales"], gs["scales"], rtol=1e-5)
    assert torch.allclose(back["opacities"], gs["opacities"], atol=1e-5)
    assert torch.allclose(back["colors"], gs["colors"], atol=1e-5)


def test_open3d_reads_the_points(tmp_path):
    gs = gaussians(seed=2)
    path = save_gaussians_ply(tmp_path / "g.ply", **gs)
    cloud = o3d.io.read_point_cloud(str(path))
    assert np.allclose(np.asarray(cloud.points), gs["means"].numpy(), atol=1e-5)


def test_bad_inputs_name_the_problem(tmp_path):
    gs = gaussians()
    with pytest.raises(ValueError, match="scales must be positive"):
        save_gaussians_ply(tmp_path / "g.ply", **(gs | {"scales": -gs["scales"]}))
    with pytest.raises(ValueError, match="colors must have shape"):
        save_gaussians_ply(tmp_path / "g.ply", **(gs | {"colors": gs["colors"][:, :2]}))
    path = tmp_path / "points.ply"
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.random.default_rng(0).random((5, 3))))
    o3d.io.write_point_cloud(str(path), cloud)
    with pytest.raises(ValueError, match=r"points\.ply: vertex\.f_dc_0: missing"):
        load_gaussians_ply(path)
