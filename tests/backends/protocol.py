"""Label Studio's side of the protocol, for the adapter tests that drive a backend through Flask's test client."""
from __future__ import annotations


def predict(client, tasks: list[dict], config: str, project: str, context: dict | None = None) -> dict:
    """POST /predict as Label Studio does; the answer's JSON (fails the test unless it is a 200)."""
    r = client.post("/predict", json={"tasks": tasks, "project": project, "label_config": config,
                                      "params": {"context": context}})
    assert r.status_code == 200, r.json
    return r.json
