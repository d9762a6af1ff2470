"""sync.py on image and audio projects against a real Label Studio (no backend needed): folder uploads with face
blurring and dedup, and COCO / YOLO / VOC / ASR-manifest exports read back with standard tools."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytestmark = pytest.mark.e2e
IMAGES = ["000000000009.jpg", "000000000025.jpg", "000000000036.jpg"]  # the last one shows a face


def _config(path, title: str, template: str, labels: str = "") -> str:
    path.write_text(f"title: {title}\ntemplate: {template}\n{labels}\nviews: {{tiers: false}}\n")
    return str(path)


@pytest.fixture(scope="module")
def image_project(label_studio, sdk, datasets_dir, tmp_path_factory):
    from scripts.labelloop_sync.cli import main

    tmp = tmp_path_factory.mktemp("images")
    folder = tmp / "photos"
    folder.mkdir()
    for name in IMAGES:
        shutil.copy(datasets_dir / "coco128/images/train2017" / name, folder / name)
    (folder / "notes.md").write_text("not an image")
    cfg = _config(tmp / "p.yaml", "sync detection", "detection", "labels: [person, giraffe, car]")
    base = ["--url", label_studio.url, "--api-key", label_studio.token]
    assert main([*base, "setup", "--config", cfg]) == 0
    pid = next(p.id for p in sdk.projects.list() if p.title == "sync detection")
    return {"id": pid, "config": cfg, "folder": folder, "tmp": tmp}


def test_folder_upload_blurs_faces_and_skips_known_files(sync, sdk, label_studio, image_project):
    import cv2

    from scripts.labelloop_sync.faces import detect_faces
    from scripts.labelloop_sync.connection import LS

    code, out, _ = sync("import", "--config", image_project["config"], image_project["folder"], "--blur-faces")
    assert code == 0 and "imported 3, skipped 0, ignored 1" in out, out
    assert "faces_blurred 0" not in out
    code, out, _ = sync("import", "--config", image_project["config"], image_project["folder"], "--blur-faces")
    assert code == 0 and "imported 0, skipped 3" in out, out

    ls = LS(label_studio.url, label_studio.token)
    tasks = {t.data["source_name"]: t for t in sdk.tasks.list(project=image_project["id"])}
    assert set(tasks) == set(IMAGES)
    for name, task in tasks.items():
        assert task.data["image"].startswith("/data/upload/")
        served = ls.raw("GET", task.data["image"], "download").content
        original = (image_project["folder"] / name).read_bytes()
        if name == "000000000036.jpg":
            assert served != original
            assert not detect_faces(cv2.imdecode(np.frombuffer(served, np.uint8), cv2.IMREAD_COLOR))
        else:
            assert served == original, f"{name} has no face and is uploaded untouched"


def _box(x, y, w, h, label, width, height):
    return {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": width,
            "original_height": height, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


@pytest.fixture(scope="module")
def annotated(image_project, sdk):
    tasks = {t.data["source_name"]: t for t in sdk.tasks.list(project=image_project["id"])}
    if len(tasks) < 3:
        pytest.skip("needs the upload test's tasks")
    a, b = tasks[IMAGES[0]], tasks[IMAGES[1]]
    # 640x480 and 640x426 photos
    sdk.annotations.create(a.id, result=[_box(10, 20, 25, 50, "person", 640, 480)])
    sdk.annotations.create(a.id, result=[_box(11, 20, 25, 50, "person", 640, 480)])  # a second annotator agrees
    sdk.annotations.create(b.id, result=[_box(50, 10, 40, 80, "giraffe", 640, 426),
                                         _box(0, 60, 10, 20, "car", 640, 426)])
    return {"a": a, "b": b}


def test_coco_export_opens_with_pycocotools(sync, image_project, annotated, tmp_path):
    from pycocotools.coco import COCO

    out = tmp_path / "coco"
    code, stdout, _ = sync("export", "--config", image_project["config"], "--format", "coco", "--out", out,
                           "--copy-media")
    assert code == 0 and "exported 2 tasks" in stdout, stdout
    doc = json.loads((out / "annotations.json").read_text())
    assert set(doc) >= {"info", "licenses", "images", "annotations", "categories"}
    coco = COCO(str(out / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["person", "giraffe", "car"]
    images = {img["file_name"]: img for img in coco.loadImgs(coco.getImgIds())}
    assert len(images) == 2
    for name, img in images.items():
        assert (out / name).is_file()
        from PIL import Image

        with Image.open(out / name) as im:
            assert im.size == (img["width"], img["height"])
    giraffe = coco.loadAnns(coco.getAnnIds(catIds=coco.getCatIds(catNms=["giraffe"])))
    assert len(giraffe) == 1
    assert giraffe[0]["bbox"] == pytest.approx([320, 42.6, 256, 340.8])
    assert giraffe[0]["area"] == pytest.approx(256 * 340.8)
    mask = coco.annToMask(giraffe[0])
    assert mask.shape == (426, 640) and mask.sum() > 0
    assert len(coco.getAnnIds()) == 3  # the newest annotation of the double-checked task, plus two boxes
    report = json.loads((out / "agreement.json").read_text())
    assert report["overlapping"] == 1 and report["mean_agreement"] == 1.0


def test_yolo_export_structure(sync, image_project, annotated, tmp_path):
    out = tmp_path / "yolo"
    code, stdout, _ = sync("export", "--config", image_project["config"], "--format", "yolo", "--out", out,
                           "--copy-media")
    assert code == 0, stdout
    classes = (out / "classes.txt").read_text().split("\n")[:-1]
    assert classes == ["person", "giraffe", "car"]
    images = sorted(p.stem for p in (out / "images").iterdir())
    labels = sorted(p.stem for p in (out / "labels").iterdir())
    assert images == labels and len(images) == 2
    rows = [line.split() for p in (out / "labels").iterdir() for line in p.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert len(row) == 5 and 0 <= int(row[0]) < len(classes)
        assert all(0 <= float(v) <= 1 for v in row[1:])
    giraffe = next(r for r in rows if r[0] == "1")
    assert [float(v) for v in giraffe[1:]] == pytest.approx([0.7, 0.5, 0.4, 0.8], abs=1e-5)
    assert "names:" in (out / "data.yaml").read_text()

    # and Ultralytics' own data-set loader reads the same boxes from it
    import detection.runtime  # noqa: F401  (offline Ultralytics settings)
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(out / "data.yaml"))
    assert data["nc"] == 3 and list(data["names"].values()) == classes
    dataset = YOLODataset(img_path=data["train"], data=data, imgsz=320, augment=False, cache=False)
    boxes = [b.tolist() for lb in dataset.labels for b in lb["bboxes"]]
    assert len(dataset.labels) == 2 and len(boxes) == 3
    assert any(b == pytest.approx([0.7, 0.5, 0.4, 0.8], abs=1e-5) for b in boxes)


def test_voc_export(sync, image_project, annotated, tmp_path):
    out = tmp_path / "voc"
    code, stdout, _ = sync("export", "--config", image_project["config"], "--format", "voc", "--out", out)
    assert code == 0, stdout
    files = sorted((out / "Annotations").glob("*.xml"))
    assert len(files) == 2
    objects = [o for f in files for o in ET.parse(f).getroot().iter("object")]
    assert sorted(o.findtext("name") for o in objects) == ["car", "giraffe", "person"]
    giraffe = next(o for o in objects if o.findtext("name") == "giraffe").find("bndbox")
    assert [int(giraffe.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")] == [321, 44, 576, 383]


def test_local_storage_needs_label_studio_local_files(sync, image_project):
    # the test server does not serve local files: the error says what to set
    code, _, err = sync("import", "--config", image_project["config"], image_project["folder"], "--local-storage")
    assert code == 1 and "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED" in err and err.count("\n") == 1, err


def test_asr_manifest_with_audio_copied(sync, sdk, label_studio, datasets_dir, tmp_path):
    clips = sorted((datasets_dir / "speech/ljspeech").rglob("*.flac"))[:2]
    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in clips:
        shutil.copy(clip, folder / clip.name)
    cfg = _config(tmp_path / "asr.yaml", "sync asr", "asr",
                  "overlap: {maximum_annotations: 2, overlap_cohort_percentage: 100}")
    assert sync("setup", "--config", cfg)[0] == 0
    code, out, _ = sync("import", "--config", cfg, folder)
    assert code == 0 and "imported 2" in out, out
    pid = next(p.id for p in sdk.projects.list() if p.title == "sync asr")
    task = next(t for t in sdk.tasks.list(project=pid) if t.data["source_name"] == clips[0].name)

    def text(s):
        return [{"from_name": "transcription", "to_name": "audio", "type": "textarea", "value": {"text": [s]}}]

    sdk.annotations.create(task.id, result=text("printing in the only sense"))
    sdk.annotations.create(task.id, result=text("Printing, in the only sense"))
    code, out, _ = sync("export", "--config", cfg, "--format", "asr-manifest", "--out", tmp_path / "m",
                        "--copy-media")
    assert code == 0 and "exported 1 tasks" in out, out
    [row] = [json.loads(line) for line in (tmp_path / "m/manifest.jsonl").read_text().splitlines()]
    assert row["text"] == "Printing, in the only sense"
    audio = tmp_path / "m" / row["audio_filepath"]
    assert audio.is_file() and audio.read_bytes() == clips[0].read_bytes()
    assert 0.5 < row["duration"] < 15
    report = json.loads((tmp_path / "m/agreement.json").read_text())
    # transcripts agree by word error rate under asr's normalisation: case and punctuation are no disagreement
    assert report["overlapping"] == 1 and report["mean_agreement"] == 1.0


@pytest.fixture
def local_files_ls(tmp_path):
    """A Label Studio of its own that serves local files from tmp_path/root (the session's one does not)."""
    from ops.services import LabelStudioServer

    root = (tmp_path / "root").resolve()
    root.mkdir()
    # Label Studio 1.23 reads NAME, LABEL_STUDIO_NAME and HEARTEX_NAME (core/utils/params.get_env)
    server = LabelStudioServer(env={"LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
                                    "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(root)})
    try:
        yield server, root
    finally:
        server.stop()


def test_local_storage_serves_a_folder_without_upload(local_files_ls, datasets_dir, tmp_path, capsys):
    from urllib.parse import parse_qs, urlparse

    from label_studio_sdk import LabelStudio

    from backends.config import Settings
    from backends.media import MediaFetcher
    from scripts.labelloop_sync.cli import main
    from scripts.labelloop_sync.connection import LS

    server, root = local_files_ls
    folder = root / "photos"
    folder.mkdir()
    for name in IMAGES[:2]:
        shutil.copy(datasets_dir / "coco128/images/train2017" / name, folder / name)
    (folder / "notes.md").write_text("not an image")
    base = ["--url", server.url, "--api-key", server.token]
    cfg = _config(tmp_path / "p.yaml", "sync local files", "detection", "labels: [person]")
    assert main([*base, "setup", "--config", cfg]) == 0
    capsys.readouterr()

    assert main([*base, "--json", "import", "--config", cfg, str(folder), "--local-storage"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["kind"] == "folder" and first["status"] == "completed" and first["imported"] == 2, first

    sdk = LabelStudio(base_url=server.url, api_key=server.token)
    pid = next(p.id for p in sdk.projects.list() if p.title == "sync local files")
    [storage] = sdk.import_storage.local.list(project=pid)
    assert storage.id == first["storage"] and storage.path == str(folder)
    tasks = list(sdk.tasks.list(project=pid))
    assert len(tasks) == 2
    paths = {}
    for task in tasks:
        url = task.data["image"]
        assert url.startswith("/data/local-files/?d="), url
        paths[parse_qs(urlparse(url).query)["d"][0]] = url
    assert sorted(paths) == [f"photos/{n}" for n in IMAGES[:2]]

    # a second run reuses the storage and imports nothing new; a new file is picked up by the next run
    assert main([*base, "--json", "import", "--config", cfg, str(folder), "--local-storage"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["storage"] == first["storage"] and second["imported"] == 0, second
    assert len(list(sdk.tasks.list(project=pid))) == 2
    assert len(sdk.import_storage.local.list(project=pid)) == 1
    shutil.copy(datasets_dir / "coco128/images/train2017" / IMAGES[2], folder / IMAGES[2])
    assert main([*base, "--json", "import", "--config", cfg, str(folder), "--local-storage"]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == 1
    assert len(list(sdk.tasks.list(project=pid))) == 3

    # the bytes come back through Label Studio with the token, and from disk through a backend's MediaFetcher
    ls = LS(server.url, server.token)
    settings = Settings.from_env({"LOCAL_FILES_ROOTS": str(root), "MEDIA_CACHE_DIR": str(tmp_path / "cache")})
    fetcher = MediaFetcher(settings)
    for rel, url in paths.items():
        original = (root / rel).read_bytes()
        assert ls.raw("GET", url, "download").content == original
        assert fetcher.fetch(url).read_bytes() == original
