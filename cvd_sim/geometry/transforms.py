"""Rigid transforms as 4x4 matrices: poses from (x, y, z, yaw), inverses, applying poses to points.

Every function accepts numpy arrays or torch tensors with any leading batch dims and returns the same kind.
Poses are named `X_to_Y` (DESIGN §4): `X_to_Y @ p_X = p_Y` for homogeneous column points.
"""

from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _swap_last(m: Array) -> Array:
    return m.transpose(-1, -2) if isinstance(m, torch.Tensor) else np.swapaxes(m, -1, -2)


def yaw_matrix(yaw: Array) -> np.ndarray:
    """Rotation about +z: yaw [...] radians -> [..., 3, 3] (numpy, float64)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((*yaw.shape, 3, 3))
    rot[..., 0, 0], rot[..., 0, 1] = c, -s
    rot[..., 1, 0], rot[..., 1, 1] = s, c
    rot[..., 2, 2] = 1.0
    return rot


def pose_from_xyz_yaw(x: Array, y: Array, z: Array, yaw: Array) -> np.ndarray:
    """Pose of a frame at (x, y, z) rotated by yaw about +z -> [..., 4, 4] float64 (frame-to-parent)."""
    x, y, z, yaw = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, y, z, yaw)))
    pose = np.zeros((*x.shape, 4, 4))
    pose[..., :3, :3] = yaw_matrix(yaw)
    pose[..., 0, 3], pose[..., 1, 3], pose[..., 2, 3] = x, y, z
    pose[..., 3, 3] = 1.0
    return pose


def xyz_yaw_from_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of `pose_from_xyz_yaw` for z-axis rotations: [..., 4, 4] -> [..., 4] (x, y, z, yaw)."""
    pose = np.asarray(pose, dtype=np.float64)
    yaw = np.arctan2(pose[..., 1, 0], pose[..., 0, 0])
    return np.concatenate([pose[..., :3, 3], yaw[..., None]], axis=-1)


def invert_pose(pose: Array) -> Array:
    """Inverse of rigid transforms [..., 4, 4] (R^T, -R^T t), exact for rotations, cheaper than a solve."""
    rot_t = _swap_last(pose[..., :3, :3])
    trans = pose[..., :3, 3:]
    if isinstance(pose, torch.Tensor):
        out = torch.zeros_like(pose)
    else:
        out = np.zeros_like(np.asarray(pose, dtype=np.result_type(pose, np.float32)))
    out[..., :3, :3] = rot_t
    out[..., :3, 3:] = -(rot_t @ trans)
    out[..., 3, 3] = 1
    return out


def apply_transform(transform: Array, points: Array) -> Array:
    """Apply 4x4 transforms [..., 4, 4] to points [..., N, 3] -> [..., N, 3] (batch dims broadcast)."""
    rot_t = _swap_last(transform[..., :3, :3])
    return points @ rot_t + transform[..., None, :3, 3]


def rotate_vectors(transform: Array, vectors: Array) -> Array:
    """Rotate direction vectors [..., N, 3] by the rotation part of [..., 4, 4] (no translation)."""
    return vectors @ _swap_last(transform[..., :3, :3])


def wrap_angle(angle: Array) -> Array:
    """Wrap angles to [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def quaternion_to_matrix(wxyz: Array) -> np.ndarray:
    """Unit quaternions [..., 4] (w, x, y, z) -> rotation matrices [..., 3, 3] (numpy, float64)."""
    q = np.asarray(wxyz, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)
