"""3D Gaussians to and from the standard 3DGS `.ply` layout (Kerbl et al.), readable by common 3DGS viewers.

Per vertex, float32: x, y, z, nx, ny, nz (zeros), f_dc_0..2 (degree-0 SH: rgb = 0.5 + C0·f_dc),
opacity (logit), scale_0..2 (log), rot_0..3 (quaternion w, x, y, z).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

SH_C0 = 0.28209479177387814
PLY_PROPERTIES = (
    "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip
_OPACITY_EPS = 1e-6


def save_gaussians_ply(
    path: str | Path,
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
) -> Path:
    """Write N Gaussians: means [N, 3], quats [N, 4] wxyz (normalised here), scales [N, 3] (> 0, not log),
    opacities [N] in [0, 1], colors [N, 3] RGB in [0, 1]. Returns the path."""
    n = means.shape[0]
    shapes = {"means": (means, (n, 3)), "quats": (quats, (n, 4)), "scales": (scales, (n, 3))}
    shapes |= {"opacities": (opacities, (n,)), "colors": (colors, (n, 3))}
    for name, (tensor, shape) in shapes.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"save_gaussians_ply: {name} must have shape {list(shape)}, got {list(tensor.shape)}"
            )
    if (scales <= 0).any():
        raise ValueError("save_gaussians_ply: scales must be positive (pass linear scales, not logs)")

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()

    q = arr(torch.nn.functional.normalize(quats.detach().double(), dim=-1))
    o = np.clip(arr(opacities), _OPACITY_EPS, 1 - _OPACITY_EPS)
    columns = np.concatenate(
        [
            arr(means),
            np.zeros((n, 3)),
            (arr(colors) - 0.5) / SH_C0,
            np.log(o / (1 - o))[:, None],
            np.log(arr(scales)),
            q,
        ],
        axis=1,
    ).astype(np.float32)
    vertex = np.empty(n, dtype=[(name, "f4") for name in PLY_PROPERTIES])
    for i, name in enumerate(PLY_PROPERTIES):
        vertex[name] = columns[:, i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<").write(str(path))
    return path


def load_gaussians_ply(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a 3DGS `.ply` -> {"means" [N, 3], "quats" [N, 4] wxyz, "scales" [N, 3], "opacities" [N],
    "colors" [N, 3]} float32 tensors, activations applied (exp, sigmoid, 0.5 + C0·f_dc). Extra
    properties such as f_rest_* are ignored."""
    path = Path(path)
    ply = PlyData.read(str(path))
    if "vertex" not in ply:
        raise ValueError(f"{path}: no 'vertex' element")
    vertex = ply["vertex"]
    names = {p.name for p in vertex.properties}
    for name in PLY_PROPERTIES:
        if name not in names and not name.startswith("n"):
            raise ValueError(f"{path}: vertex.{name}: missing property of the 3DGS layout")

    def cols(*fields: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(vertex[f], dtype=np.float32) for f in fields], axis=-1))

    return {
        "means": cols("x", "y", "z"),
        "quats": cols("rot_0", "rot_1", "rot_2", "rot_3"),
        "scales": torch.exp(cols("scale_0", "scale_1", "scale_2")),
        "opacities": torch.sigmoid(cols("opacity")[:, 0]),
        "colors": 0.5 + SH_C0 * cols("f_dc_0", "f_dc_1", "f_dc_2"),
    }
