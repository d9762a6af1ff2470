"""Model building and checkpoint lookup. No SAM weights exist on this machine: models here have random weights,
and "checkpoints" are state dicts of random models saved by the tests (same layout as the official files)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from segmentation.engines import CHECKPOINTS, KINDS, build_sam, load_sam, model_id, resolve_checkpoint
from segmentation.errors import EngineError


def test_random_vit_t_loads_and_embeds(sam_t):
    assert not sam_t.training
    assert not any(p.requires_grad for p in sam_t.parameters())
    assert sam_t.image_encoder.img_size == 256
    assert sam_t.prompt_encoder.image_embedding_size == (16, 16)
    with torch.inference_mode():
        out = sam_t.image_encoder(torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 256, 16, 16)  # TinyViT's grid follows the input size (upstream hard-codes 64)
    assert torch.isfinite(out).all()


def test_vit_b_at_reduced_size_runs():
    """Random-weight SAM ViT-B at 256 px: position embeddings and relative positions sized for a 16x16 grid."""
    sam = load_sam("vit_b", None, device="cpu", image_size=256, random_init=True)
    assert sam.image_encoder.pos_embed.shape == (1, 16, 16, 768)
    with torch.inference_mode():
        out = sam.image_encoder(torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 256, 16, 16)


def test_builder_has_the_official_layout():
    """Our builders must load the official checkpoints: same state-dict keys and shapes at 1024 px."""
    from mobile_sam import sam_model_registry as mobile_registry
    from segment_anything import sam_model_registry

    for ours, official in ((build_sam("vit_t"), mobile_registry["vit_t"]()),
                           (build_sam("vit_b"), sam_model_registry["vit_b"]())):
        a, b = ours.state_dict(), official.state_dict()
        assert a.keys() == b.keys()
        assert all(a[k].shape == b[k].shape for k in a)


def test_load_checkpoint_file(tmp_path):
    torch.manual_seed(1)
    source = build_sam("vit_t")
    path = tmp_path / "mobile_sam.pt"
    torch.save(source.state_dict(), path)
    sam = load_sam("vit_t", path, device="cpu")
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(sam.state_dict()[key], source.state_dict()[key])
    # MobileSAM weights do not depend on the input size, so they load at 256 px too
    small = load_sam("vit_t", path, device="cpu", image_size=256)
    assert torch.equal(small.state_dict()[key], source.state_dict()[key])
    # wrapped the way training scripts save them
    torch.save({"model": source.state_dict()}, tmp_path / "wrapped.pt")
    load_sam("vit_t", tmp_path / "wrapped.pt", device="cpu", image_size=256)


def test_load_errors(tmp_path):
    with pytest.raises(EngineError, match="no checkpoint"):
        load_sam("vit_t", None)
    with pytest.raises(EngineError, match="unknown SAM model kind"):
        load_sam("vit_x", None, random_init=True)
    with pytest.raises(EngineError, match="multiple of 64"):
        load_sam("vit_t", None, image_size=300, random_init=True)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(EngineError, match="cannot read checkpoint"):
        load_sam("vit_t", junk)
    with pytest.raises(EngineError, match="made for 1024 px"):
        load_sam("vit_b", junk, image_size=256)
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(EngineError, match="does not fit SAM vit_t"):
        load_sam("vit_t", tmp_path / "other.pt", image_size=256)


def test_model_id(sam_t, tmp_path):
    a = model_id("vit_t", None, sam_t)
    assert a == model_id("vit_t", None, sam_t) and a.startswith("vit_t-256-")
    torch.manual_seed(5)
    other = load_sam("vit_t", None, device="cpu", image_size=256, random_init=True)
    assert model_id("vit_t", None, other) != a  # other encoder weights, other embeddings
    ckpt = tmp_path / "mobile_sam.pt"
    ckpt.write_bytes(b"x" * 10)
    b = model_id("vit_t", ckpt, sam_t)
    assert b == model_id("vit_t", ckpt, sam_t) != a
    ckpt.write_bytes(b"y" * 11)
    assert model_id("vit_t", ckpt, sam_t) != b  # a replaced file invalidates the cache namespace


@pytest.fixture
def hub(tmp_path, monkeypatch) -> SimpleNamespace:
    """An empty torch hub cache (`.dir`), and a download that fails as it would offline (URLs tried: `.calls`)."""
    hub_dir = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub_dir))
    calls = []

    def offline(url, dst, *args, **kwargs):
        calls.append(url)
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return SimpleNamespace(dir=hub_dir, calls=calls)


def test_resolve_in_weights_dir(tmp_path, hub):
    weights = tmp_path / "weights"
    (weights / "sub").mkdir(parents=True)
    (weights / "mobile_sam.pt").write_bytes(b"0")
    (weights / "sub" / "custom.pt").write_bytes(b"0")
    assert resolve_checkpoint(None, "vit_t", weights) == weights / "mobile_sam.pt"
    assert resolve_checkpoint("mobile_sam.pt", "vit_t", weights) == weights / "mobile_sam.pt"
    assert resolve_checkpoint("sub/custom.pt", "vit_t", weights) == weights / "sub" / "custom.pt"
    assert resolve_checkpoint(str(weights / "sub" / "custom.pt"), "vit_t", weights) == weights / "sub" / "custom.pt"
    other = tmp_path / "models"
    other.mkdir()
    (other / "x.pt").write_bytes(b"0")
    assert resolve_checkpoint(str(other / "x.pt"), "vit_b", weights, allowed_roots=[other]) == other / "x.pt"
    assert hub.calls == []


def test_resolve_in_hub_cache(tmp_path, hub):
    cached = hub.dir / "checkpoints" / "sam_vit_b_01ec64.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"0")
    assert resolve_checkpoint(None, "vit_b", tmp_path / "nowhere") == cached


def test_resolve_rejects_escapes(tmp_path, hub):
    weights = tmp_path / "weights"
    weights.mkdir()
    secret = tmp_path / "secret.pt"
    secret.write_bytes(b"0")
    for spec in ("../secret.pt", "sub/../../secret.pt", str(secret), str(weights / ".." / "secret.pt")):
        with pytest.raises(EngineError, match="outside the allowed folders"):
            resolve_checkpoint(spec, "vit_t", weights)
    with pytest.raises(EngineError, match="outside the allowed folders"):
        resolve_checkpoint("/etc/passwd", "vit_t", None)  # no folder allowed at all
    # a symlink inside the weights folder pointing outside is the admin's choice, and allowed
    os.symlink(secret, weights / "linked.pt")
    assert resolve_checkpoint("linked.pt", "vit_t", weights) == weights / "linked.pt"


def test_resolve_follows_symlinks_before_the_root_check(tmp_path, hub):
    weights, outside = tmp_path / "weights", tmp_path / "outside"
    weights.mkdir()
    outside.mkdir()
    (outside / "secret.pt").write_bytes(b"0")
    os.symlink(outside, weights / "sub")  # the literal paths below are inside the weights folder
    os.symlink(outside / "secret.pt", weights / "linked.pt")
    for spec in ("sub/secret.pt", str(weights / "sub" / "secret.pt"), str(weights / "linked.pt")):
        with pytest.raises(EngineError, match="outside the allowed folders"):
            resolve_checkpoint(spec, "vit_t", weights)
    # a symlinked root still holds its own files
    os.symlink(weights, tmp_path / "weights-link")
    (weights / "custom.pt").write_bytes(b"0")
    assert resolve_checkpoint("custom.pt", "vit_t", tmp_path / "weights-link") == tmp_path / "weights-link" / "custom.pt"
    assert resolve_checkpoint(str(tmp_path / "weights-link" / "custom.pt"), "vit_t", tmp_path / "weights-link") \
        == weights / "custom.pt"


def test_resolve_missing_offline(tmp_path, hub):
    weights = tmp_path / "weights"
    weights.mkdir()
    with pytest.raises(EngineError) as err:
        resolve_checkpoint(None, "vit_t", weights)
    msg = str(err.value)
    assert "mobile_sam.pt" in msg and str(weights) in msg and str(hub.dir / "checkpoints") in msg
    assert "WEIGHTS_DIR" in msg and "network is unreachable" in msg
    assert hub.calls == [CHECKPOINTS["vit_t"][1]]
    # an unofficial name is never downloaded
    with pytest.raises(EngineError, match="not an official"):
        resolve_checkpoint("my_sam.pt", "vit_b", weights)
    assert len(hub.calls) == 1
    with pytest.raises(EngineError, match="does not exist"):
        resolve_checkpoint("sub/none.pt", "vit_b", weights)


def test_kinds_have_checkpoints():
    assert set(KINDS) == set(CHECKPOINTS)
    assert all(url.endswith(name) for name, url in CHECKPOINTS.values())
