"""One writer per control tag: which one a control gets, its model settings, and the regions it writes."""
from __future__ import annotations

import numpy as np
import pytest

from backends.exceptions import UnsupportedConfig
from backends.labels import Control
from backends.regions import polygon_pixels, rle_to_mask
from backends.regions_writers import BrushLabels, PixelRegion, PolygonLabels, RectangleLabels, writer_for

W, H = 200, 100


def control(tag: str, **attrs) -> Control:
    return Control(name="c", tag=tag, to_name="image", object_tag="image", value_key="image", labels=["Cat"],
                   attrs=attrs)


def test_each_tag_gets_its_writer_and_settings():
    assert type(writer_for(control("rectanglelabels"))) is RectangleLabels
    assert writer_for(control("polygonlabels")).model_task == writer_for(control("brushlabels")).model_task == "segment"
    w = writer_for(control("rectanglelabels", model_score_threshold="0.3", model_path="a.pt"), {"model_path": "b.pt"})
    assert (w.threshold, w.model_path) == (0.3, "a.pt")
    w = writer_for(control("rectanglelabels"), {"model_score_threshold": 0.7, "model_path": "b.pt"})
    assert (w.threshold, w.model_path) == (0.7, "b.pt")
    for bad in ("high", "1.5"):
        with pytest.raises(UnsupportedConfig, match="model_score_threshold"):
            writer_for(control("rectanglelabels", model_score_threshold=bad))
    with pytest.raises(UnsupportedConfig, match="cannot be predicted"):
        writer_for(control("choices"))


def test_items_carry_the_control_size_score_and_label():
    [item] = writer_for(control("rectanglelabels")).predict_regions(
        [PixelRegion("Cat", 0.912345, (20, 10, 120, 60))], W, H)
    assert {k: item[k] for k in ("from_name", "to_name", "type", "original_width", "original_height", "score")} == \
        {"from_name": "c", "to_name": "image", "type": "rectanglelabels", "original_width": W, "original_height": H,
         "score": 0.9123}
    assert item["value"].pop("rectanglelabels") == ["Cat"]
    assert item["value"] == pytest.approx({"x": 10, "y": 10, "width": 50, "height": 50, "rotation": 0})
    # a box with no area is left out
    assert writer_for(control("rectanglelabels")).predict_regions([PixelRegion("Cat", 1, (5, 5, 5, 9))], W, H) == []


def test_outlines_and_masks_from_whichever_shape_there_is():
    square = np.array([[20, 20], [60, 20], [60, 60], [20, 60]], float)
    mask = np.zeros((H, W), bool)
    mask[10:50, 100:180] = True
    polygon = writer_for(control("polygonlabels"))
    [item] = polygon.predict_regions([PixelRegion("Cat", 0.5, polygon=square)], W, H)
    assert item["value"]["closed"] is True and item["value"]["polygonlabels"] == ["Cat"]
    np.testing.assert_allclose(polygon_pixels(item["value"], W, H), square)
    # a mask (refined) wins over the detector's own outline
    [item] = polygon.predict_regions([PixelRegion("Cat", 0.5, polygon=square, mask=mask)], W, H)
    assert polygon_pixels(item["value"], W, H)[:, 0].min() >= 99
    brush = writer_for(control("brushlabels"))
    [item] = brush.predict_regions([PixelRegion("Cat", 0.5, polygon=square)], W, H)
    filled = rle_to_mask(item["value"]["rle"], W, H)
    assert item["value"]["format"] == "rle" and 1500 <= filled.sum() <= 1700 and filled[40, 40]
    assert brush.predict_regions([PixelRegion("Cat", 0.5, mask=np.zeros((H, W), bool))], W, H) == []
    assert brush.predict_regions([PixelRegion("Cat", 0.5, (0, 0, 5, 5))], W, H) == []  # a box alone has no mask
    assert type(brush) is BrushLabels and type(polygon) is PolygonLabels
