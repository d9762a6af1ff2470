"""The segmentation backend end to end: an image uploaded to a real Label Studio, the task opened (automatic masks),
then a smart keypoint sent through Label Studio's interactive endpoint comes back as a brush mask.

The SAM checkpoint is a MobileSAM with random weights (none can be had here): the mask's shape and format are
checked, not its quality."""
from __future__ import annotations

import pytest
import requests
from label_studio_sdk import LabelStudio

from backends.regions import rle_to_mask
from tests.e2e.label_studio import predictions, retrieve_predictions, upload
from tests.backends.test_segmentation_adapter import BUS, CONFIG, click, random_sam_weights

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_smart_keypoint_returns_a_brush_mask(label_studio, start_backend, weights_dir, tmp_path):
    weights = random_sam_weights(tmp_path / "weights", weights_dir)
    backend = start_backend("segmentation", WEIGHTS_DIR=str(weights), LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token)
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = client.projects.create(title="e2e segmentation", label_config=CONFIG)
    upload(label_studio, project.id, {"bus.jpg": BUS})
    headers = {"Authorization": f"Token {label_studio.token}"}
    (task,) = list(client.tasks.list(project=project.id))
    ml = client.ml.create(project=project.id, url=backend.url, title="labelloop segmentation", is_interactive=True)
    assert client.ml.get(ml.id).state == "CO", backend.log()[-3000:]

    # opening the task: automatic masks of the bus and the persons, from YOLO-seg refined by (random) SAM boxes
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    (pred,) = predictions(client, project.id)[task.id]
    assert {i["value"]["brushlabels"][0] for i in pred["result"]} == {"Bus", "Person"}, backend.log()[-3000:]

    # the annotator clicks the bus with the smart keypoint tool
    r = requests.post(f"{label_studio.url}/api/ml/{ml.id}/interactive-annotating", headers=headers, timeout=60,
                      json={"task": task.id, "context": {"result": [click(50, 40)]}})
    assert r.ok, (r.text, backend.log()[-3000:])
    body = r.json()
    data = body.get("data", body)
    (region,) = data["result"]
    assert region["type"] == "brushlabels" and region["value"]["format"] == "rle"
    assert region["value"]["brushlabels"] == ["Bus"] and region["from_name"] == "mask"
    assert rle_to_mask(region["value"]["rle"], 810, 1080).shape == (1080, 810)
