"""Every kept box's probabilities over all the model's classes, from a YOLO detection model.

Ultralytics' Results keep only each box's top class and its score; margin and entropy need the whole row. The
detection head's sigmoid class scores are still in the raw output that NMS filters, so this predictor asks NMS for
the indices of the boxes it kept (the hook Ultralytics has for per-object features) and reads the rows there.

    r = yolo.predict(image, predictor=ClassProbsPredictor, conf=0.01)[0]
    r.feats  # (len(r.boxes), len(yolo.names)) numpy, in the order of r.boxes; r.feats.max(1) == r.boxes.conf

A YOLO object keeps the predictor it was last given: later calls without `predictor=` go on using this one (its
boxes are the stock predictor's). Detection models only: a segmentation predictor treats per-object features as a
re-identification request.
"""
from __future__ import annotations

from . import runtime  # noqa: F401  (offline-safe Ultralytics settings, before ultralytics is imported)

import numpy as np
from ultralytics.models.yolo.detect import DetectionPredictor


class ClassProbsPredictor(DetectionPredictor):
    """A DetectionPredictor whose Results carry, as `feats`, each kept box's class probabilities (n, classes)."""

    def postprocess(self, preds, img, orig_imgs, **kwargs):
        # a non-None _feats makes the base postprocess ask NMS for the kept indices and hand them to get_obj_feats
        self._feats = preds[0] if isinstance(preds, (list, tuple)) else preds
        try:
            return super().postprocess(preds, img, orig_imgs, **kwargs)
        finally:
            self._feats = None

    def get_obj_feats(self, raw, idxs) -> list[np.ndarray]:
        """Per image, the class rows (k, nc) of the kept anchors; raw is the head's (B, 4 + nc, anchors) output."""
        nc = len(self.model.names)
        return [raw[b, 4:4 + nc, idx.reshape(-1).long()].T.float().cpu().numpy() for b, idx in enumerate(idxs)]
