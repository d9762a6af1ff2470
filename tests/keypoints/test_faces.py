"""dlib's face landmarks on a real coco128 photo with a face, and which config labels they predict."""
from __future__ import annotations

import numpy as np
import pytest

from detection.images import load_image
from keypoints.faces import FaceLandmarker, confidence, predictor_path
from keypoints.landmarks import GROUPS, is_face_label, landmark_map, resolve

FACE_PHOTO = "000000000459.jpg"  # one frontal face, dlib margin 3.3


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker.load()


@pytest.fixture(scope="module")
def photo(datasets_dir) -> np.ndarray:
    return load_image(datasets_dir / "coco128" / "images" / "train2017" / FACE_PHOTO)


def test_the_weights_come_with_the_package():
    assert predictor_path().stat().st_size > 90_000_000  # the 68-point model, not the 5-point one


def test_landmarks_lie_in_the_face_in_anatomical_order(landmarker, photo):
    faces = landmarker.faces(photo)
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.xyxy
    assert face.points.shape == (68, 2) and face.score > 0.9
    pad = 0.2 * (x2 - x1)  # dlib's box is tight: the jaw line may leave it a little
    assert ((face.points >= (x1 - pad, y1 - pad)) & (face.points <= (x2 + pad, y2 + pad))).all()
    left_eye, right_eye = face.point(GROUPS["left_eye"]), face.point(GROUPS["right_eye"])
    nose, chin = face.point(GROUPS["nose_tip"]), face.point(GROUPS["chin"])
    assert right_eye[0] < nose[0] < left_eye[0]  # the person's left eye is on the photo's right
    assert max(left_eye[1], right_eye[1]) < nose[1] < chin[1]


def test_the_threshold_drops_weak_faces(landmarker, photo):
    assert len(landmarker.faces(photo, threshold=0.1)) > len(landmarker.faces(photo)) >= \
        len(landmarker.faces(photo, threshold=0.9999))
    assert confidence(0.0) == 0.5 and confidence(3) > 0.99


def test_a_photo_without_faces_has_none(landmarker):
    assert landmarker.faces(np.full((120, 160, 3), 128, np.uint8)) == []


def test_labels_map_by_name_or_predicted_values_and_others_never():
    labels = ["Nose tip", "left-eye", "Chin", "pupil", "tip", "mid", "bad"]
    got = landmark_map(labels, {"tip": ["30"], "mid": ["36-41", "42-47"], "bad": ["30", "elbow"]})
    assert got["Nose tip"] == (30,) and got["left-eye"] == GROUPS["left_eye"] and got["Chin"] == (8,)
    assert got["tip"] == (30,) and got["mid"] == tuple(range(36, 48))
    assert "pupil" not in got and "bad" not in got  # no mapping (or an entry that resolves to nothing)
    assert resolve("68") is None and resolve("41-36") is None
    assert is_face_label("Face") and is_face_label("Box", ["head"]) and not is_face_label("Person")


def test_a_large_photo_is_searched_scaled_down_and_landmarked_in_full(landmarker, photo):
    import cv2

    big = cv2.resize(photo, (photo.shape[1] * 4, photo.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    (small,) = landmarker.faces(photo)
    (large,) = landmarker.faces(big)
    size = small.xyxy[2] - small.xyxy[0]
    # dlib boxes a face found at another pyramid level a little differently; the landmarks follow the face
    assert np.abs(np.array(large.xyxy) / 4 - small.xyxy).max() < 0.2 * size
    assert np.linalg.norm(large.points / 4 - small.points, axis=1).mean() < 0.05 * size
