"""/health?project=N lists the measures that project's scores can follow, by the label config its /setup saved:
a detection project with PolygonLabels (YOLO-seg: no class probabilities) can be ranked by least confidence only,
so `sync.py rank` with the default strategy falls back instead of getting a 400."""
from __future__ import annotations

import pytest

from backends.app import create_app
from backends.config import Settings
from selection import MEASURES

BOXES = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Person"/><Label value="Bus"/></RectangleLabels></View>"""
POLYGONS = """<View><Image name="image" value="$image"/>
  <PolygonLabels name="outline" toName="image"><Label value="Person"/><Label value="Bus"/></PolygonLabels></View>"""


@pytest.fixture
def client(tmp_path, weights_dir):
    settings = Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media")
    return create_app("detection", settings).test_client()


def _measures(client, project):
    answer = client.get("/health", query_string={"project": project})
    assert answer.status_code == 200, answer.json
    return answer.json["measures"]


def test_a_polygon_project_is_scored_by_least_confidence_only(client):
    for project, config in ((1, BOXES), (2, POLYGONS)):
        assert client.post("/setup", json={"project": f"{project}.1", "schema": config}).status_code == 200
    assert _measures(client, 1) == list(MEASURES)
    assert _measures(client, 2) == ["least_confidence"]
    assert _measures(client, 3) == list(MEASURES)  # a project never set up: the backend's in general
    assert client.get("/health").json["measures"] == list(MEASURES)
    # what /health promised is what /predict accepts: margin on the polygon project is refused with the reason
    tasks = [{"id": 1, "data": {"image": "/nonexistent.jpg"}}]
    refused = client.post("/predict", json={"tasks": tasks, "project": "2.1", "label_config": POLYGONS,
                                            "params": {"uncertainty": "margin"}})
    assert refused.status_code == 400 and "least_confidence" in refused.json["error"]
