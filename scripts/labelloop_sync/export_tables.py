"""`export --format json` (tasks.json: data, annotations, the exported result, agreement, top-k) and
`--format csv` (tasks.csv: a column per data field and per control)."""
from __future__ import annotations

import csv
import json
from pathlib import Path


def write_json(items: list, out: Path) -> list[Path]:
    path = out / "tasks.json"
    path.write_text(json.dumps([{"id": i.id, "data": i.data, "annotations": i.annotations, "result": i.result,
                                 "agreement": i.agreement, **({"top_k": i.top_k} if i.top_k else {})}
                                for i in items], indent=2, ensure_ascii=False))
    return [path]


def _cell(regions: list[dict]) -> str:
    values = []
    for r in regions:
        v = r.get("value") or {}
        for key in ("choices", "taxonomy", "text", "rectanglelabels", "polygonlabels", "labels"):
            if key in v:
                values.extend("/".join(x) if isinstance(x, list) else str(x) for x in v[key])
    return "|".join(values)


def write_csv(items: list, out: Path) -> list[Path]:
    data_cols = sorted({k for i in items for k in i.data})
    controls = sorted({r.get("from_name", "") for i in items for r in i.result})
    top_k = ["top_k"] if any(i.top_k for i in items) else []  # "control=label:score|..." of the newest prediction
    path = out / "tasks.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *data_cols, *controls, "annotations", "agreement", *top_k])
        for i in items:
            by_control = {c: [r for r in i.result if r.get("from_name") == c] for c in controls}
            writer.writerow([i.id, *(i.data.get(c, "") for c in data_cols), *(_cell(by_control[c]) for c in controls),
                             i.n_annotations, "" if i.agreement is None else f"{i.agreement:.4f}",
                             *(["|".join(f"{c}={t['label']}:{t['score']}" for c, ks in i.top_k.items() for t in ks)]
                               if top_k else [])])
    return [path]
