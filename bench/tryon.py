"""Virtual try-on: latency per try-on, and placement error against hand-marked points.

    python bench/tryon.py [--t1 PATH/t1.jpg] [-r 5] [--json OUT]

Latency: what POST /v1/tryon does with an upload, HTTP aside: decoding the JPEG, then
`TryOnRenderer.render`, then encoding the result as JPEG; on two real portraits (skimage's
astronaut, matplotlib's Grace Hopper; and the astronaut enlarged to 1600 px) with one product
of each wearable article, after a warm-up; p50/p95 per run, the median over runs.

Placement: the ear lobes and chin the renderer uses (`ear_lobes`, mesh point 152) against
bench/data/tryon_marks.yaml, marked by eye. Each face is matched to its marks by the nearest
chin; the error is in pixels and in inter-ocular distances (IOD, the face's own ruler), per
point kind. An ear the renderer judges hidden while the marks have it counts as a miss.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import matplotlib
import numpy as np
import yaml
from PIL import Image
from skimage import data as skimage_data

from bijou.catalog.loader import BUNDLED_IMAGES, load_catalog
from bijou.catalog.media import MediaStore, decode_image
from bijou.config import TryOnConfig
from bijou.metrics import percentile
from bijou.serve.faces import CHIN
from bijou.serve.tryon import TryOnRenderer, ear_lobes

MARKS = Path(__file__).resolve().parent / "data" / "tryon_marks.yaml"
HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def photos(t1: Path | None) -> dict[str, Image.Image]:
    found = {
        "astronaut": Image.fromarray(skimage_data.astronaut()),
        "grace_hopper": Image.open(HOPPER).convert("RGB"),
    }
    if t1 is not None:
        found["t1"] = Image.open(t1).convert("RGB")
    return found


def _jpeg(photo: Image.Image) -> bytes:
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    return out.getvalue()


def latency(renderer: TryOnRenderer, repeats: int) -> dict[str, dict[str, float]]:
    """p50/p95 ms per try-on, per photo size: the portraits as they are (512 px), and the
    astronaut enlarged to 1600 px, the largest photo the widget sends."""
    products = {p.article: p for p in load_catalog().products if p.image}
    media = MediaStore(BUNDLED_IMAGES)
    portraits = photos(None)
    groups = {
        "512px": list(portraits.values()),
        "1600px": [portraits["astronaut"].resize((1600, 1600), Image.LANCZOS)],
    }
    report = {}
    for group, group_photos in groups.items():
        cases = [
            (_jpeg(photo), products[article], media.load(products[article]))
            for photo in group_photos
            for article in renderer.sizes.articles
        ]

        def try_on(upload: bytes, product, image) -> bytes:
            return renderer.render(decode_image(upload), product, image).encode("jpeg")

        for case in cases:  # warm-up
            try_on(*case)
        p50s, p95s = [], []
        for _ in range(repeats):
            times = []
            for case in cases:
                start = time.perf_counter()
                try_on(*case)
                times.append((time.perf_counter() - start) * 1000)
            p50s.append(percentile(times, 0.5))
            p95s.append(percentile(times, 0.95))
        report[group] = {
            "try_ons_per_run": len(cases),
            "p50_ms": round(statistics.median(p50s), 1),
            "p95_ms": round(statistics.median(p95s), 1),
        }
    return report


def placement(renderer: TryOnRenderer, t1: Path | None) -> dict[str, object]:
    marks = yaml.safe_load(MARKS.read_text(encoding="utf-8"))["photos"]
    errors: dict[str, list[tuple[float, float]]] = {"lobe": [], "chin": []}
    misses, faces_used = 0, 0
    points: list[dict[str, object]] = []
    for name, photo in photos(t1).items():
        meshes = [renderer.models.mesh(photo, box) for box in renderer.models.detect(photo)]
        for marked in marks[name]:
            chin_mark = np.array(marked["chin"], dtype=float)
            # The face whose chin is nearest the marked one, within one IOD.
            near = [
                (float(np.linalg.norm(m.point(CHIN) - chin_mark)), k)
                for k, m in enumerate(meshes)
                if m is not None
            ]
            best = min(near, default=None)
            face = meshes[best[1]] if best and best[0] < meshes[best[1]].eye_distance else None
            if face is None:
                misses += len(marked)
                points += [{"photo": name, "point": key, "found": "no face"} for key in marked]
                continue
            faces_used += 1
            iod = face.eye_distance
            found = dict(
                zip(("lobe_left", "lobe_right"), ear_lobes(face, renderer.sizes), strict=True)
            )
            found["chin"] = face.point(CHIN)
            for key, point in marked.items():
                if found.get(key) is None:
                    misses += 1
                    points.append({"photo": name, "point": key, "found": "judged hidden"})
                    continue
                px = float(np.linalg.norm(np.asarray(found[key]) - np.asarray(point)))
                points.append({"photo": name, "point": key, "marked": point,
                               "found": [round(float(v)) for v in found[key]],
                               "px": round(px, 1), "iod": round(px / iod, 2)})  # fmt: skip
                errors["chin" if key == "chin" else "lobe"].append((px, px / iod))
    report: dict[str, object] = {"faces": faces_used, "missed_points": misses, "points": points}
    for kind, values in errors.items():
        if values:
            report[kind] = {
                "n": len(values),
                "median_px": round(statistics.median(v[0] for v in values), 1),
                "max_px": round(max(v[0] for v in values), 1),
                "median_iod": round(statistics.median(v[1] for v in values), 3),
                "max_iod": round(max(v[1] for v in values), 3),
            }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--t1", type=Path, help="insightface 2.1 sdist's data/images/t1.jpg")
    parser.add_argument("-r", "--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    renderer = TryOnRenderer.load(TryOnConfig())
    result = {
        "latency": latency(renderer, args.repeats),
        "placement": placement(renderer, args.t1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
