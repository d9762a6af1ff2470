from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detection.dataset import build_dataset, safe_stem, split
from detection.types import LabeledObject, Sample
from ops.sample_data import coco128_names, coco128_samples


def read_labels(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()]


def same_lines(got: list[list[float]], expected: list[list[float]], tol: float = 1e-6) -> bool:
    return len(got) == len(expected) and all(
        len(g) == len(e) and np.allclose(g, e, atol=tol, rtol=0) for g, e in zip(got, expected))


@pytest.fixture
def image_file(tmp_path: Path):
    def make(name: str, w: int = 200, h: int = 100) -> Path:
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((h, w, 3), 127, np.uint8))
        return path

    return make


# ---------------------------------------------------------------------------------------------------------------- split


def test_split_is_deterministic_and_independent_of_order_and_other_ids():
    ids = [f"task-{i}" for i in range(500)]
    train, val = split(ids, 0.2)
    assert sorted(train + val) == sorted(ids) and not set(train) & set(val)
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    train2, val2 = split(shuffled, 0.2)
    assert set(train2) == set(train) and set(val2) == set(val)
    # adding samples never moves an old one
    train3, val3 = split(ids + [f"new-{i}" for i in range(300)], 0.2)
    assert set(val) <= set(val3) and set(train) <= set(train3)
    # a subset keeps its sides too
    train4, val4 = split(ids[:50], 0.2)
    assert set(val4) == set(val) & set(ids[:50])
    # outputs keep the input order
    assert train == [i for i in ids if i in set(train)]


def test_split_fraction_is_roughly_respected():
    ids = [str(i) for i in range(2000)]
    for fraction in (0.1, 0.2, 0.5):
        _, val = split(ids, fraction)
        assert abs(len(val) / len(ids) - fraction) < 0.04


def test_split_minimum_one_on_each_side():
    assert split(["only"], 0.2) == (["only"], [])
    assert split([], 0.2) == ([], [])
    for fraction in (0.0, 0.01, 0.99, 1.0):
        train, val = split(["a", "b"], fraction)
        assert len(train) == 1 and len(val) == 1
    # with no natural val id the lowest-hash one moves to val, deterministically
    ids = [f"x{i}" for i in range(5)]
    _, val = split(ids, 0.0)
    assert len(val) == 1 and split(list(reversed(ids)), 0.0)[1] == val
    train, _ = split(ids, 1.0)
    assert len(train) == 1 and split(list(reversed(ids)), 1.0)[0] == train


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError):
        split(["a", "b"], 1.5)
    with pytest.raises(ValueError):
        split(["a", "b"], -0.1)


def test_safe_stem():
    assert safe_stem("123") == "123"
    assert safe_stem("a/b c.jpg") != safe_stem("a_b_c.jpg")
    assert "/" not in safe_stem("a/b") and " " not in safe_stem("a b")
    assert len(safe_stem("x" * 500)) < 100


# -------------------------------------------------------------------------------------------------------- build_dataset


def test_build_detect_dataset(tmp_path: Path, image_file, caplog):
    a, b, c = image_file("a.png"), image_file("b.jpg", 100, 100), image_file("c.jpeg")
    samples = [
        Sample("1", a, 200, 100, objects=[
            LabeledObject("cat", (20, 10, 60, 50)),
            LabeledObject("dog", (-10, 50, 50, 150)),  # clipped to the image
            LabeledObject("bird", (0, 0, 10, 10)),  # not a project class
            LabeledObject("cat", (30, 30, 30, 60)),  # zero width: dropped
        ]),
        Sample("2", b, 100, 100),  # background
        Sample("folder/3", c, 200, 100, objects=[LabeledObject("dog", (0, 0, 200, 100))]),
    ]
    with caplog.at_level(logging.WARNING, logger="detection.dataset"):
        ds = build_dataset(samples, ["cat", "dog"], tmp_path / "ds", val_fraction=0.34)
    data_yaml = ds.data_yaml
    assert "bird" in caplog.text and "1 objects" in caplog.text
    data = yaml.safe_load(data_yaml.read_text())
    assert data == {"path": str((tmp_path / "ds").absolute()), "train": "images/train", "val": "images/val",
                    "names": {0: "cat", 1: "dog"}}
    train, val = split(["1", "2", "folder/3"], 0.34)
    assert (ds.train_ids, ds.val_ids) == (train, val)
    where = {i: ("train" if i in train else "val") for i in ["1", "2", "folder/3"]}
    root = tmp_path / "ds"
    img1 = root / "images" / where["1"] / "1.png"
    assert img1.is_symlink() and img1.resolve() == a.resolve()
    assert same_lines(read_labels(root / "labels" / where["1"] / "1.txt"),
                      [[0, 0.2, 0.3, 0.2, 0.4], [1, 0.125, 0.75, 0.25, 0.5]])
    assert (root / "labels" / where["2"] / "2.txt").read_text() == ""
    stem = safe_stem("folder/3")
    assert (root / "images" / where["folder/3"] / f"{stem}.jpeg").exists()
    assert read_labels(root / "labels" / where["folder/3"] / f"{stem}.txt") == [[1, 0.5, 0.5, 1.0, 1.0]]
    assert len(list(root.glob("images/*/*"))) == 3 and len(list(root.glob("labels/*/*.txt"))) == 3

    # rebuilding replaces the previous content
    build_dataset(samples[:2], ["cat", "dog"], root, val_fraction=0.5)
    assert len(list(root.glob("images/*/*"))) == 2


def test_build_segment_dataset(tmp_path: Path, image_file):
    a, b = image_file("a.png"), image_file("b.png")
    tri = np.array([[20, 10], [60, 10], [40, 50]], float)
    samples = [
        Sample("s1", a, 200, 100, objects=[
            LabeledObject("cat", (20, 10, 60, 50), tri),  # the triangle and its box: one object, one line
            LabeledObject("dog", (100, 20, 140, 80)),  # box only: 4 corners
            LabeledObject("dog", (0, 0, 10, 0), np.array([[0, 0], [10, 0], [5, 0]], float)),  # zero area: dropped
        ]),
        Sample("s2", b, 200, 100, objects=[
            LabeledObject("dog", (0, 0, 300, 50), np.array([[0, 0], [300, 0], [300, 50], [0, 50]], float))]),
    ]
    data_yaml = build_dataset(samples, ["cat", "dog"], tmp_path / "ds", task="segment", val_fraction=0.5).data_yaml
    root = data_yaml.parent
    labels = {p.stem: read_labels(p) for p in root.glob("labels/*/*.txt")}
    # lines follow the order of `objects`; compared sorted, as the old two-list layout wrote them in another order
    assert same_lines(sorted(labels["s1"]), sorted([
        [1, 0.5, 0.2, 0.7, 0.2, 0.7, 0.8, 0.5, 0.8],
        [0, 0.1, 0.1, 0.3, 0.1, 0.2, 0.5],
    ]))
    assert same_lines(labels["s2"], [[1, 0, 0, 1, 0, 1, 0.5, 0, 0.5]])  # clipped

    # the same samples for detection: the triangle and its box are one object; an outlined object gives its box
    data_yaml = build_dataset(samples, ["cat", "dog"], tmp_path / "det", task="detect", val_fraction=0.5).data_yaml
    labels = {p.stem: read_labels(p) for p in data_yaml.parent.glob("labels/*/*.txt")}
    assert same_lines(sorted(labels["s1"]), sorted([[0, 0.2, 0.3, 0.2, 0.4], [1, 0.6, 0.5, 0.2, 0.6]]))
    assert same_lines(labels["s2"], [[1, 0.5, 0.25, 1.0, 0.5]])


def test_build_dataset_rejects_bad_input(tmp_path: Path, image_file):
    a = image_file("a.png")
    with pytest.raises(ValueError, match="duplicate"):
        build_dataset([Sample("1", a, 200, 100), Sample("1", a, 200, 100)], ["x"], tmp_path / "d1")
    with pytest.raises(ValueError, match="duplicates"):
        build_dataset([Sample("1", a, 200, 100)], ["x", "x"], tmp_path / "d2")
    with pytest.raises(ValueError):
        build_dataset([Sample("1", a, 200, 100)], ["x"], tmp_path / "d3", task="pose")
    with pytest.raises(ValueError, match="readable"):
        build_dataset([Sample("1", tmp_path / "missing.jpg", 10, 10)], ["x"], tmp_path / "d4")


def test_single_sample_is_used_for_train_and_val(tmp_path: Path, image_file):
    ds = build_dataset([Sample("1", image_file("a.png"), 200, 100, objects=[LabeledObject("x", (0, 0, 100, 50))])],
                       ["x"], tmp_path / "ds")
    root = ds.data_yaml.parent
    assert (root / "images/train/1.png").exists() and (root / "images/val/1.png").exists()
    assert ds.train_ids == ["1"] and ds.val_ids == ["1"]


def test_image_without_suffix_gets_one(tmp_path: Path, image_file):
    src = image_file("a.png")
    bare = tmp_path / "upload"
    os.replace(src, bare)
    data_yaml = build_dataset([Sample("7", bare, 200, 100), Sample("8", image_file("b.png"), 200, 100)], ["x"],
                              tmp_path / "ds", val_fraction=0.5).data_yaml
    assert list(data_yaml.parent.glob("images/*/7.png"))


def test_coco128_round_trip_and_ultralytics_reads_it(tmp_path: Path, datasets_dir: Path):
    """Boxes converted from coco128's own YOLO labels are written back identically, and Ultralytics' dataset
    loader reads the folder (through the symlinks) with the same labels."""
    import detection.runtime  # noqa: F401
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    names = coco128_names(datasets_dir)
    samples = coco128_samples(datasets_dir, 24)
    data_yaml = build_dataset(samples, [names[i] for i in range(len(names))], tmp_path / "ds").data_yaml
    root = data_yaml.parent
    n_objects = 0
    for s in samples:
        ours = list(root.glob(f"labels/*/{s.id}.txt"))
        assert len(ours) == 1
        original = datasets_dir / "coco128" / "labels" / "train2017" / f"{s.id}.txt"
        expected = read_labels(original) if original.exists() else []
        got = read_labels(ours[0])
        assert same_lines(got, [e[:5] for e in expected], tol=2e-6), s.id
        n_objects += len(got)

    data = check_det_dataset(str(data_yaml))
    assert data["nc"] == 80
    loaded = 0
    for part in ("train", "val"):
        ds = YOLODataset(img_path=data[part], data=data, task="detect", imgsz=320, augment=False, cache=False)
        loaded += sum(len(lb["cls"]) for lb in ds.labels)
        assert all(Path(lb["im_file"]).parent.name == part for lb in ds.labels)
    assert loaded == n_objects
    assert (root / "labels" / "train.cache").exists()  # written in our folder, not in the read-only source


def test_sample_without_size_is_skipped_only_when_it_has_objects(tmp_path: Path, image_file, caplog):
    samples = [
        Sample("sized", image_file("a.png"), 200, 100, objects=[LabeledObject("x", (0, 0, 100, 50))]),
        Sample("unsized-background", image_file("b.png"), 0, 0),
        Sample("unsized-objects", image_file("c.png"), 0, 0, objects=[LabeledObject("x", (0, 0, 100, 50))]),
    ]
    with caplog.at_level(logging.WARNING, logger="detection.dataset"):
        data_yaml = build_dataset(samples, ["x"], tmp_path / "ds", val_fraction=0.5).data_yaml
    stems = sorted(p.stem for p in data_yaml.parent.glob("labels/*/*.txt"))
    assert stems == ["sized", "unsized-background"]
    assert "unsized-objects" in caplog.text


# ------------------------------------------------------------------------------------------------ one line per object


def test_overlapping_outlined_objects_of_one_class_stay_two(tmp_path: Path, image_file):
    """Two nearly identical outlines of the same class are two objects: two box lines and two polygon lines (pairing
    boxes with polygons by IoU could merge or swap them)."""
    first = np.array([[20, 10], [60, 10], [60, 50], [20, 50]], float)
    second = first + [1, 0]
    sample = Sample("s", image_file("a.png"), 200, 100, objects=[
        LabeledObject("cat", (20, 10, 60, 50), first),
        LabeledObject("cat", (21, 10, 61, 50), second),
    ])
    det = build_dataset([sample], ["cat"], tmp_path / "det", task="detect").data_yaml
    assert same_lines(read_labels(det.parent / "labels/train/s.txt"),
                      [[0, 0.2, 0.3, 0.2, 0.4], [0, 0.205, 0.3, 0.2, 0.4]])
    seg = build_dataset([sample], ["cat"], tmp_path / "seg", task="segment").data_yaml
    assert same_lines(read_labels(seg.parent / "labels/train/s.txt"), [
        [0, 0.1, 0.1, 0.3, 0.1, 0.3, 0.5, 0.1, 0.5],
        [0, 0.105, 0.1, 0.305, 0.1, 0.305, 0.5, 0.105, 0.5],
    ])


def test_box_only_object_in_segment_and_outlined_object_in_detect(tmp_path: Path, image_file):
    box_only = Sample("b", image_file("a.png"), 200, 100, objects=[LabeledObject("x", (100, 20, 140, 80))])
    seg = build_dataset([box_only], ["x"], tmp_path / "seg", task="segment").data_yaml
    assert same_lines(read_labels(seg.parent / "labels/val/b.txt"), [[0, 0.5, 0.2, 0.7, 0.2, 0.7, 0.8, 0.5, 0.8]])

    # the detect line comes from `xyxy`, not from the outline's bounds
    tri = np.array([[20, 10], [60, 10], [40, 50]], float)
    outlined = Sample("o", image_file("b.png"), 200, 100, objects=[LabeledObject("x", (10, 10, 70, 60), tri)])
    det = build_dataset([outlined], ["x"], tmp_path / "det", task="detect").data_yaml
    assert same_lines(read_labels(det.parent / "labels/val/o.txt"), [[0, 0.2, 0.35, 0.3, 0.5]])
    # too short an outline falls back to the box's corners in "segment"
    short = Sample("p", image_file("c.png"), 200, 100,
                   objects=[LabeledObject("x", (100, 20, 140, 80), np.array([[100, 20], [140, 80]], float))])
    seg = build_dataset([short], ["x"], tmp_path / "short", task="segment").data_yaml
    assert same_lines(read_labels(seg.parent / "labels/val/p.txt"), [[0, 0.5, 0.2, 0.7, 0.2, 0.7, 0.8, 0.5, 0.8]])


def test_build_dataset_returns_the_split_of_usable_samples(tmp_path: Path, image_file):
    """The returned ids are the ones written into each part, split over the usable samples only: here the missing
    image's id is the only one `split` would put in validation, so splitting all ids again would give no usable
    validation image, while build_dataset moved another one there."""
    ids = ["a", "b", "c", "d"]
    samples = [Sample(i, image_file(f"{i}.png"), 200, 100, objects=[LabeledObject("x", (0, 0, 100, 50))])
               for i in ids]
    samples.insert(2, Sample("gone-7", tmp_path / "missing.png", 200, 100,
                             objects=[LabeledObject("x", (0, 0, 10, 10))]))
    assert split([s.id for s in samples], 0.2)[1] == ["gone-7"]  # what re-splitting all samples would say
    ds = build_dataset(samples, ["x"], tmp_path / "ds", val_fraction=0.2)
    assert (ds.train_ids, ds.val_ids) == split(ids, 0.2) == (["a", "b", "c"], ["d"])
    root = ds.data_yaml.parent
    assert sorted(p.stem for p in (root / "images" / "train").iterdir()) == ds.train_ids
    assert sorted(p.stem for p in (root / "images" / "val").iterdir()) == ds.val_ids
    assert sorted(p.stem for p in root.glob("labels/*/*.txt")) == ids
    with pytest.raises(AttributeError):  # frozen
        ds.val_ids = []
