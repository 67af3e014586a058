"""The measurement behind the try-on's choice of landmark model: dlib (HOG detector and the
68-point predictor of `face-recognition-models`, run by `dlib-bin`) against MediaPipe's
full-range detector and face mesh (bijou.serve.faces), on the same photos and hand marks as
bench/tryon.py. Needs the dlib packages, which Bijou does not depend on:

    pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0
    python bench/tryon_models_compare.py --t1 PATH/t1.jpg

Per model: faces found on each photo (non-face photos should find none), detection and
landmark time, and the chin and ear-lobe error against the marks. Both place a lobe the same
way: on the face outline at the height of the nose's base, 7 mm outside it (dlib: its jaw
contour, points 0-16; the nose's base, point 33).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from skimage import data as skimage_data
from tryon import MARKS, photos

from bijou.config import TryOnConfig
from bijou.modelfiles import package_dir
from bijou.serve.faces import CHIN
from bijou.serve.tryon import TryOnRenderer, _oval_at_height, ear_lobes

NON_FACES = ("chelsea", "coffee", "rocket")


def dlib_points(photo: Image.Image, detector, predictor) -> list[dict[str, np.ndarray]]:
    array = np.asarray(photo)
    found = []
    for box in detector(array, 1):
        shape = predictor(array, box)
        pts = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=float)
        iod = float(np.linalg.norm(pts[42:48].mean(0) - pts[36:42].mean(0)))
        y = pts[33, 1]
        out = np.array([7 * iod / 63, 0])
        left = _oval_at_height(pts[0:9], y) - out
        right = _oval_at_height(pts[16:7:-1], y) + out
        found.append({"chin": pts[8], "lobe_left": left, "lobe_right": right, "iod": iod})
    return found


def mediapipe_points(photo: Image.Image, renderer: TryOnRenderer) -> list[dict[str, np.ndarray]]:
    found = []
    for box in renderer.models.detect(photo):
        mesh = renderer.models.mesh(photo, box)
        if mesh is None:
            continue
        left, right = ear_lobes(mesh, renderer.sizes)
        found.append({"chin": mesh.point(CHIN), "lobe_left": left, "lobe_right": right,
                      "iod": mesh.eye_distance})  # fmt: skip
    return found


def score(name: str, locate, t1: Path | None) -> None:
    marks = yaml.safe_load(MARKS.read_text(encoding="utf-8"))["photos"]
    errors: dict[str, list[float]] = {"chin": [], "lobe": []}
    missed, times = 0, []
    for photo_name, photo in photos(t1).items():
        start = time.perf_counter()
        faces = locate(photo)
        times.append((time.perf_counter() - start) * 1000)
        print(f"  {name} {photo_name}: {len(faces)} faces, {times[-1]:.0f} ms")
        for marked in marks[photo_name]:
            chin = np.array(marked["chin"], dtype=float)
            face = min(faces, key=lambda f: np.linalg.norm(f["chin"] - chin), default=None)
            if face is None or np.linalg.norm(face["chin"] - chin) > face["iod"]:
                missed += len(marked)
                continue
            for key, point in marked.items():
                if face.get(key) is None:
                    missed += 1
                    continue
                err = float(np.linalg.norm(face[key] - np.asarray(point))) / face["iod"]
                errors["chin" if key == "chin" else "lobe"].append(err)
    false = {n: len(locate(Image.fromarray(getattr(skimage_data, n)()))) for n in NON_FACES}
    print(
        f"{name}: chin median {statistics.median(errors['chin']):.3f} IOD "
        f"(n={len(errors['chin'])}), lobe median {statistics.median(errors['lobe']):.3f} IOD "
        f"(n={len(errors['lobe'])}), points missed {missed}, faces on non-face photos {false}"
    )


def main() -> None:
    import dlib

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--t1", type=Path)
    args = parser.parse_args()
    models = package_dir("face_recognition_models")
    assert models is not None, "pip install face-recognition-models"
    weights = models / "models" / "shape_predictor_68_face_landmarks.dat"
    predictor = dlib.shape_predictor(str(weights))
    detector = dlib.get_frontal_face_detector()
    renderer = TryOnRenderer.load(TryOnConfig())
    score("dlib-68", lambda p: dlib_points(p, detector, predictor), args.t1)
    score("mediapipe", lambda p: mediapipe_points(p, renderer), args.t1)


if __name__ == "__main__":
    main()
