"""Camera rigs: intrinsics, camera-to-ego extrinsics and image size; the nuScenes six-camera preset.

Conventions (DESIGN §4): camera frame is OpenCV (x right, y down, z forward); ego frame is x forward,
y left, z up with the origin at the rear axle on the ground. Pixel centres sit at +0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cvd_sim.geometry.transforms import invert_pose, quaternion_to_matrix
from cvd_sim.scenarios.schema import CameraRigSpec

NUSCENES_CAMERAS: tuple[str, ...] = (
    "CAM_FRONT_LEFT",
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_RIGHT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
)
NUSCENES_IMAGE_HW = (900, 1600)

# nuScenes calibrated_sensor records (scene-0061, v1.0): translation (m, ego frame), rotation (w, x, y, z,
# camera-to-ego), focal length and principal point (pixels, 1600x900 images).
_NUSCENES_CALIBRATION: dict[str, tuple[tuple[float, ...], tuple[float, ...], float, float, float]] = {
    "CAM_FRONT_LEFT": (
        (1.52387798135, 0.494631336551, 1.50932822144),
        (0.6757265034669446, -0.6736266522251881, 0.21214015046209478, -0.21122827103904068),
        1272.5979470598488,
        826.6154927353808,
        479.75165386361925,
    ),
    "CAM_FRONT": (
        (1.70079118954, 0.0159456324149, 1.51095763913),
        (0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755),
        1266.417203046554,
        816.2670197447984,
        491.50706579294757,
    ),
    "CAM_FRONT_RIGHT": (
        (1.5508477543, -0.493404796419, 1.49574800619),
        (0.2060347966337182, -0.2026940577919598, 0.6824507824531167, -0.6713610884174485),
        1260.8474446004698,
        807.968244525554,
        495.3344268742088,
    ),
    "CAM_BACK_RIGHT": (
        (1.0148780988, -0.480568219723, 1.56239545128),
        (0.12280980120078765, -0.132400842670559, -0.7004305821388234, 0.690496031265798),
        1259.5137405846733,
        807.2529053838625,
        501.19579884916527,
    ),
    "CAM_BACK": (
        (0.0283260309358, 0.00345136761476, 1.57910346144),
        (0.5037872666382278, -0.49740249788611096, -0.4941850223835201, 0.5045496097725578),
        809.2209905677063,
        829.2196003259838,
        481.77842384512485,
    ),
    "CAM_BACK_LEFT": (
        (1.03569100218, 0.484795032713, 1.59097014818),
        (0.6924185592174665, -0.7031619420114925, -0.11648342771943819, 0.11203317912370753),
        1256.7414812095406,
        792.1125740759628,
        492.7757465151356,
    ),
}


def resize_crop_intrinsics(
    intrinsics: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]
) -> np.ndarray:
    """Intrinsics [..., 3, 3] after the standard resize: scale uniformly to cover `dst_hw`, centre-crop.

    Keeps pixels square (fx/fy unchanged in ratio). Images must be resized the same way
    (`scale = max(dst_h / src_h, dst_w / src_w)`, then crop the centre); `resize_crop_box` gives the crop.
    """
    scale, (left, top) = resize_crop_box(src_hw, dst_hw)
    out = np.array(intrinsics, dtype=np.float64, copy=True)
    out[..., :2, :] *= scale
    out[..., 0, 2] -= left
    out[..., 1, 2] -= top
    return out


def resize_crop_box(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> tuple[float, tuple[float, float]]:
    """Scale factor and (left, top) crop offset in scaled pixels for `resize_crop_intrinsics`."""
    (sh, sw), (dh, dw) = src_hw, dst_hw
    scale = max(dh / sh, dw / sw)
    return scale, ((sw * scale - dw) / 2.0, (sh * scale - dh) / 2.0)


@dataclass(frozen=True)
class CameraRig:
    """A multi-camera rig.

    names:      V camera names, nuScenes ring order for the preset.
    intrinsics: [V, 3, 3] float64 pixels for an image of (height, width).
    cam_to_ego: [V, 4, 4] float64, OpenCV camera -> ego.
    """

    names: tuple[str, ...]
    intrinsics: np.ndarray
    cam_to_ego: np.ndarray
    height: int
    width: int

    def __post_init__(self) -> None:
        v = len(self.names)
        if self.intrinsics.shape != (v, 3, 3) or self.cam_to_ego.shape != (v, 4, 4):
            raise ValueError(
                f"CameraRig: {v} names need intrinsics [{v},3,3] and cam_to_ego [{v},4,4], got "
                f"{self.intrinsics.shape} and {self.cam_to_ego.shape}"
            )
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"CameraRig: image size must be positive, got {self.height}x{self.width}")

    @classmethod
    def nuscenes(cls, height: int = 900, width: int = 1600) -> CameraRig:
        """The nuScenes six cameras in ring order, real calibration, resized+centre-cropped to (height, width)."""
        intrinsics, cam_to_ego = [], []
        for name in NUSCENES_CAMERAS:
            trans, quat, focal, cx, cy = _NUSCENES_CALIBRATION[name]
            intrinsics.append([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
            pose = np.eye(4)
            pose[:3, :3] = quaternion_to_matrix(quat)
            pose[:3, 3] = trans
            cam_to_ego.append(pose)
        rig = cls(NUSCENES_CAMERAS, np.array(intrinsics), np.stack(cam_to_ego), *NUSCENES_IMAGE_HW)
        return rig.resized(height, width)

    @classmethod
    def from_spec(cls, spec: CameraRigSpec) -> CameraRig:
        """The rig a scenario asks for (`scenario.camera_rig`): a preset at its size, or explicit cameras."""
        if spec.preset is not None:
            return {"nuscenes": cls.nuscenes}[spec.preset](spec.height, spec.width)
        return cls(
            tuple(c.name for c in spec.cameras),
            np.array([c.intrinsics for c in spec.cameras], dtype=np.float64),
            np.array([c.cam_to_ego for c in spec.cameras], dtype=np.float64),
            spec.height,
            spec.width,
        )

    @property
    def num_views(self) -> int:
        return len(self.names)

    def resized(self, height: int, width: int) -> CameraRig:
        """Same cameras for images resized to cover (height, width) and centre-cropped."""
        k = resize_crop_intrinsics(self.intrinsics, (self.height, self.width), (height, width))
        return CameraRig(self.names, k, self.cam_to_ego.copy(), int(height), int(width))

    def select(self, names: tuple[str, ...] | list[str]) -> CameraRig:
        """Sub-rig with the named cameras, in the given order."""
        idx = [self.names.index(n) for n in names]
        return CameraRig(tuple(names), self.intrinsics[idx], self.cam_to_ego[idx], self.height, self.width)

    def ego_to_cam(self) -> np.ndarray:
        """[V, 4, 4] ego -> OpenCV camera."""
        return invert_pose(self.cam_to_ego)

    def horizontal_fov(self) -> np.ndarray:
        """[V] horizontal field of view in radians."""
        k = self.intrinsics
        left = np.arctan2(k[:, 0, 2], k[:, 0, 0])
        right = np.arctan2(self.width - k[:, 0, 2], k[:, 0, 0])
        return left + right

    def yaw_in_ego(self) -> np.ndarray:
        """[V] heading of each optical axis in the ego frame (radians, 0 = forward, + = left)."""
        axis = self.cam_to_ego[:, :3, 2]
        return np.arctan2(axis[:, 1], axis[:, 0])

    def torch(self, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> dict:
        """{"intrinsics": [V, 3, 3], "cam_to_ego": [V, 4, 4]} as tensors."""
        return {
            "intrinsics": torch.as_tensor(self.intrinsics, dtype=dtype, device=device),
            "cam_to_ego": torch.as_tensor(self.cam_to_ego, dtype=dtype, device=device),
        }
