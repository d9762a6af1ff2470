from __future__ import annotations

from pathlib import Path

import pytest

from ops.sample_data import TREC_DESCRIPTIONS, read_trec
from text_cls import ControlSpec, Encoder, get_encoder


@pytest.fixture(scope="session")
def encoder(weights_dir: Path) -> Encoder:
    """The real all-MiniLM-L6-v2 encoder, loaded once for the whole session."""
    return get_encoder(None, weights_dir)


@pytest.fixture(scope="session")
def trec(datasets_dir: Path) -> dict[str, tuple[list[str], list[str]]]:
    folder = datasets_dir / "text" / "trec"
    return {"train": read_trec(folder / "train_5500.label"), "test": read_trec(folder / "TREC_10.label")}


@pytest.fixture
def trec_spec() -> ControlSpec:
    return ControlSpec("question", list(TREC_DESCRIPTIONS), descriptions=TREC_DESCRIPTIONS)
