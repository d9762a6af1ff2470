"""Names of the 68 facial landmarks of dlib's shape predictor (the iBUG 300-W scheme, 0-based), and a config
label's points: a landmark index, a named group (its points averaged), or several of them.

Left and right are the person's own, as in COCO's person keypoints: `left_eye` is the eye on the right of a frontal
photo (iBUG points 42-47).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

N_LANDMARKS = 68

GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "chin": (8,),
    "right_eyebrow": tuple(range(17, 22)),
    "left_eyebrow": tuple(range(22, 27)),
    "nose_bridge": (27,),
    "nose_tip": (30,),
    "nose": (30,),
    "right_nostril": (31,),
    "left_nostril": (35,),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "right_eye_outer": (36,),
    "right_eye_inner": (39,),
    "left_eye_inner": (42,),
    "left_eye_outer": (45,),
    "mouth": tuple(range(48, 60)),
    "mouth_right": (48,),
    "mouth_left": (54,),
    "right_mouth_corner": (48,),
    "left_mouth_corner": (54,),
    "upper_lip": (51,),
    "lower_lip": (57,),
    "right_jaw": (0,),
    "left_jaw": (16,),
}
# what a rectangle label must be called (or predict) to be given the face's box
FACE_NAMES = ("face", "head")


def normalize(name: str) -> str:
    """A label or group name compared without case, spaces or hyphens: "Nose tip" -> "nose_tip"."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def resolve(spec: str) -> tuple[int, ...] | None:
    """The landmark indices one name stands for: a group name, an index ("30") or a range ("36-41"); None if
    it is none of these."""
    spec = normalize(spec)
    if spec in GROUPS:
        return GROUPS[spec]
    if spec.isdigit():
        i = int(spec)
        return (i,) if i < N_LANDMARKS else None
    m = re.fullmatch(r"(\d+)_(\d+)", spec)  # "36-41", normalized
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        return tuple(range(a, b + 1)) if a <= b < N_LANDMARKS else None
    return None


def landmark_map(labels: Sequence[str], synonyms: dict[str, list[str]]) -> dict[str, tuple[int, ...]]:
    """Each label that face landmarks can predict -> its landmark indices (their mean is the label's point).

    A label's `predicted_values` (in `synonyms`) decide when given: every entry must resolve (their points
    together are averaged); else its own name. Labels that neither resolves are left out: never predicted.
    """
    out: dict[str, tuple[int, ...]] = {}
    for label in labels:
        given = synonyms.get(label) or []
        if given:
            found = [resolve(s) for s in given]
            if all(f is not None for f in found):
                out[label] = tuple(i for f in found for i in f)
            continue
        by_name = resolve(label)
        if by_name is not None:
            out[label] = by_name
    return out


def is_face_label(label: str, synonyms: Sequence[str] = ()) -> bool:
    """Whether a rectangle label stands for the face box (by its `predicted_values`, else its name)."""
    names = list(synonyms) or [label]
    return any(normalize(n) in FACE_NAMES for n in names)
