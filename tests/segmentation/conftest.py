from __future__ import annotations

import contextlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segmentation.cache import EmbeddingCache
from segmentation.engines import load_sam, model_id
from segmentation.predictor import Segmenter

# Random-weight models at a reduced encoder size keep these tests fast on CPU: the code paths (resize, padding,
# prompt transform, decoder, upscaling) are the ones 1024 px models take, only the grids are smaller.
TEST_IMAGE_SIZE = 256


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two threads per process oversubscribe the CPU and run
    the small decoder ops 10x+ slower (measured); restored afterwards for other packages' tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sam_t() -> torch.nn.Module:
    """MobileSAM (vit_t) with random weights (no checkpoint here), 256 px input. Seeded: repeatable runs."""
    torch.manual_seed(0)
    return load_sam("vit_t", None, device="cpu", image_size=TEST_IMAGE_SIZE, random_init=True)


@pytest.fixture
def segmenter(sam_t) -> Segmenter:
    """A Segmenter over the random vit_t with its own empty cache."""
    return Segmenter(sam_t, model_id("vit_t", None, sam_t), EmbeddingCache())


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def coco_examples(datasets_dir: Path, n_images: int, min_area: float = 0.05, per_image: int = 1
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB image, bool mask) pairs from coco128: the first `n_images` images (by id) that have objects covering
    at least `min_area` of the image, up to `per_image` such objects each (COCO polygons rasterised)."""
    from pycocotools.coco import COCO

    root = datasets_dir / "coco128"
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO(str(root / "instances_train2017.json"))
    out: list[tuple[np.ndarray, np.ndarray]] = []
    used = 0
    for img_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(img_id)[0]
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=False))
                if a["area"] >= min_area * info["width"] * info["height"]][:per_image]
        if not anns:
            continue
        image = read_rgb(root / "images" / "train2017" / info["file_name"])
        out.extend((image, coco.annToMask(a).astype(bool)) for a in anns)
        used += 1
        if used == n_images:
            break
    return out
