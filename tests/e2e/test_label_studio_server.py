"""Smoke test of the real Label Studio the `label_studio` fixture starts: token auth, project, import, list."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

LABEL_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single">
    <Choice value="Location"/>
    <Choice value="Human"/>
    <Choice value="Numeric"/>
  </Choices>
</View>"""


def test_label_studio_server_project_import_and_list(label_studio):
    import requests
    from label_studio_sdk import LabelStudio

    # the legacy token works as a plain header too (this is what the ML backends send)
    r = requests.get(f"{label_studio.url}/api/projects", headers={"Authorization": f"Token {label_studio.token}"},
                     timeout=30)
    assert r.status_code == 200, r.text
    r = requests.get(f"{label_studio.url}/api/projects", headers={"Authorization": "Token wrong-token-123"},
                     timeout=30)
    assert r.status_code == 401

    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = client.projects.create(title="smoke: label_studio fixture", label_config=LABEL_CONFIG)
    try:
        texts = ["Where is the Eiffel Tower?", "Who wrote Hamlet?", "How many legs does a spider have?"]
        result = client.projects.import_tasks(project.id, request=[{"text": t} for t in texts],
                                              return_task_ids=True)
        assert result.task_count == 3
        tasks = list(client.tasks.list(project=project.id))
        assert sorted(t.data["text"] for t in tasks) == sorted(texts)
        assert project.id in [p.id for p in client.projects.list()]
    finally:
        client.projects.delete(project.id)
