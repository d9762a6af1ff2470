"""Keypoints for Label Studio's `<KeyPointLabels>` on images: facial landmarks from dlib before any labels, and a
YOLO pose model learned from submitted keypoints for any other skeleton.

Pure ML: images, pixels and label names in and out; this package never imports `backends` or `scripts`.

- `types`: `Keypoint`, `Instance` (a face, a body: named points, a score, a box), `PoseSample`.
- `landmarks`: the 68 iBUG landmark names and groups, and which config labels they predict.
- `faces`: dlib's face detector and 68-point shape predictor (`FaceLandmarker`).
- `skeleton`: a learned skeleton's flip order from left/right in its label names.
- `dataset`: `PoseSample`s as an Ultralytics pose dataset.
- `train`: a pose model from the detection weights (or the served one), trained with Ultralytics.
- `guard`: training plus the publish decision by validation pose mAP (OKS) against the served model.
- `model`: a trained pose model's predictions (`PoseModel`).
"""
