"""Keypoint projects in `sync.py export`: COCO keypoints (read by pycocotools, COCOeval of the export against
itself) and YOLO pose labels (read by Ultralytics' own label reader), with and without instance boxes."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.scripts.export_helpers import annotation, image_file, run_export

W, H = 200, 150
BODY = ["nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"]
BODY_CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
               '<Label value="person"/></RectangleLabels><KeyPointLabels name="kp" toName="image">'
               + "".join(f'<Label value="{n}"/>' for n in BODY) + "</KeyPointLabels></View>")
FACE = ["chin", "left_mouth", "right_mouth"]
FACE_CONFIG = ('<View><Image name="image" value="$image"/><KeyPointLabels name="face" toName="image">'
               + "".join(f'<Label value="{n}"/>' for n in FACE) + "</KeyPointLabels></View>")


def _kp(label: str, x: float, y: float, control: str = "kp") -> dict:
    return {"from_name": control, "to_name": "image", "type": "keypointlabels", "original_width": W,
            "original_height": H, "value": {"x": x, "y": y, "width": 0.6, "keypointlabels": [label]}}


def _person(x0: float, region_id: str, skip: tuple = ()) -> tuple[dict, list[dict], dict]:
    """A box at x0 (percent) and its keypoints; also the keypoints in pixels by name."""
    box = {"id": region_id, "from_name": "box", "to_name": "image", "type": "rectanglelabels", "original_width": W,
           "original_height": H, "value": {"x": x0, "y": 10, "width": 30, "height": 80, "rotation": 0,
                                           "rectanglelabels": ["person"]}}
    at = {"nose": (x0 + 15, 20), "left_eye": (x0 + 12, 17), "right_eye": (x0 + 18, 17),
          "left_shoulder": (x0 + 5, 35), "right_shoulder": (x0 + 25, 35)}
    points = {n: xy for n, xy in at.items() if n not in skip}
    return box, [_kp(n, x, y) for n, (x, y) in points.items()], {n: (x * W / 100, y * H / 100)
                                                                 for n, (x, y) in points.items()}


@pytest.fixture
def body(tmp_path):
    image = image_file(tmp_path / "people.png", W, H)
    box1, kps1, px1 = _person(5, "b1")
    box2, kps2, px2 = _person(55, "b2", skip=("right_shoulder",))
    result = [*kps2, box1, *kps1, box2]  # keypoints drawn before their box: grouped by where they are
    tasks = [{"id": 1, "data": {"image": str(image)}, "annotations": [annotation(result)]}]
    return tasks, [px1, px2]


def _keypoints(points: dict, names: list[str]) -> list[float]:
    return [v for n in names for v in ((*points[n], 2) if n in points else (0, 0, 0))]


def _self_eval(path, sigmas, shift: float = 0.0) -> float:
    """COCOeval keypoint AP of the export's own keypoints (moved by `shift` pixels) against the export."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(path))
    dets = []
    for ann in gt.loadAnns(gt.getAnnIds()):
        kps = np.array(ann["keypoints"], dtype=float).reshape(-1, 3)
        kps[:, :2] += shift * (kps[:, 2:] > 0)
        dets.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0,
                     "keypoints": kps.reshape(-1).tolist()})
    evaluator = COCOeval(gt, gt.loadRes(dets), "keypoints")
    evaluator.params.kpt_oks_sigmas = np.asarray(sigmas)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return float(evaluator.stats[0])


def test_coco_keypoints_with_boxes(monkeypatch, tmp_path, body):
    from pycocotools.coco import COCO

    tasks, pixels = body
    out = tmp_path / "coco"
    run_export(monkeypatch, out, BODY_CONFIG, tasks, "coco")
    coco = COCO(str(out / "annotations.json"))
    [category] = coco.loadCats(coco.getCatIds())
    assert category["name"] == "person" and category["keypoints"] == BODY
    # COCO's person edges among these labels, 1-based in the config's order
    assert sorted(map(sorted, category["skeleton"])) == [[1, 2], [1, 3], [2, 3], [4, 5]]
    anns = sorted(coco.loadAnns(coco.getAnnIds()), key=lambda a: a["bbox"][0])
    assert [a["num_keypoints"] for a in anns] == [5, 4]
    for ann, points in zip(anns, pixels):
        assert ann["keypoints"] == pytest.approx(_keypoints(points, BODY), abs=0.01)
    assert anns[0]["bbox"] == pytest.approx([10, 15, 60, 120])  # the box, not the keypoints' extent
    sigmas = [.026, .025, .025, .079, .079]  # COCO's for these keypoints
    assert _self_eval(out / "annotations.json", sigmas) == 1.0
    assert _self_eval(out / "annotations.json", sigmas, shift=6.0) < 0.9  # the check can fail


def test_yolo_pose_with_boxes(monkeypatch, tmp_path, body):
    import detection.runtime  # noqa: F401  (offline Ultralytics settings)
    from ultralytics.data.utils import verify_image_label

    tasks, pixels = body
    out = tmp_path / "yolo"
    run_export(monkeypatch, out, BODY_CONFIG, tasks, "yolo")
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["kpt_shape"] == [5, 3] and data["flip_idx"] == [0, 2, 1, 4, 3] and data["names"] == {0: "person"}
    checked = verify_image_label((str(out / "images/people.png"), str(out / "labels/people.txt"), "", True, 1, 5, 3,
                                  False))
    _, labels, shape, _, keypoints, _, found, _, corrupt, msg = checked
    assert (found, corrupt) == (1, 0) and shape == (H, W), msg
    order = np.argsort(labels[:, 1])
    assert labels[order, 1:] == pytest.approx(np.array([[0.2, 0.5, 0.3, 0.8], [0.7, 0.5, 0.3, 0.8]]), abs=1e-5)
    for k, points in zip(keypoints[order], pixels):
        expected = np.array(_keypoints(points, BODY)).reshape(-1, 3) / (W, H, 1)
        assert k == pytest.approx(expected, abs=1e-5)


@pytest.fixture
def faces(tmp_path):
    image = image_file(tmp_path / "faces.png", W, H)
    first = {"chin": (20, 60), "left_mouth": (15, 45), "right_mouth": (25, 45)}
    second = {"chin": (70, 70), "left_mouth": (64, 52)}
    result = [_kp(n, x, y, "face") for n, (x, y) in [*first.items(), *second.items()]]
    tasks = [{"id": 1, "data": {"image": str(image)}, "annotations": [annotation(result)]}]
    return tasks, [{n: (x * W / 100, y * H / 100) for n, (x, y) in f.items()} for f in (first, second)]


def test_keypoints_without_boxes(monkeypatch, tmp_path, faces):
    import detection.runtime  # noqa: F401
    from pycocotools.coco import COCO
    from ultralytics.data.utils import verify_image_label

    tasks, pixels = faces
    run_export(monkeypatch, tmp_path / "coco", FACE_CONFIG, tasks, "coco")
    coco = COCO(str(tmp_path / "coco/annotations.json"))
    [category] = coco.loadCats(coco.getCatIds())
    assert category["name"] == "face" and category["keypoints"] == FACE and category["skeleton"] == []
    anns = coco.loadAnns(coco.getAnnIds())  # a new face starts where a label comes again
    assert [a["num_keypoints"] for a in anns] == [3, 2]
    assert anns[0]["keypoints"] == pytest.approx(_keypoints(pixels[0], FACE), abs=0.01)
    assert anns[0]["bbox"] == pytest.approx([30, 67.5, 20, 22.5])  # the keypoints' extent
    assert _self_eval(tmp_path / "coco/annotations.json", [0.05] * 3) == 1.0

    run_export(monkeypatch, tmp_path / "yolo", FACE_CONFIG, tasks, "yolo")
    checked = verify_image_label((str(tmp_path / "yolo/images/faces.png"), str(tmp_path / "yolo/labels/faces.txt"),
                                  "", True, 1, 3, 3, False))
    assert checked[6] == 1 and checked[8] == 0, checked[-1]
    assert checked[4][1] == pytest.approx(np.array(_keypoints(pixels[1], FACE)).reshape(-1, 3) / (W, H, 1),
                                          abs=1e-5)
    assert yaml.safe_load((tmp_path / "yolo/data.yaml").read_text())["flip_idx"] == [0, 2, 1]
