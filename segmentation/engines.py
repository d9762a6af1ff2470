"""Which SAM checkpoint to load, from where, and building the model (MobileSAM `vit_t` or SAM `vit_b/l/h`).

The builders of `segment_anything` and `mobile_sam` fix the input size at 1024 px and MobileSAM's TinyViT even
hard-codes its 64x64 output grid, so the models are assembled here from their modeling classes: same modules and
state-dict keys as the official builders, with an optional smaller input size (used for fast random-weight tests).
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from functools import partial
from pathlib import Path

import torch

from .errors import EngineError

log = logging.getLogger(__name__)

KINDS = ("vit_t", "vit_b", "vit_l", "vit_h")
DEFAULT_KIND = "vit_t"
DEFAULT_IMAGE_SIZE = 1024
PATCH = 16  # every SAM image encoder outputs one embedding per 16x16 input pixels
_FB = "https://dl.fbaipublicfiles.com/segment_anything/"
# kind -> (official file name, download URL)
CHECKPOINTS: dict[str, tuple[str, str]] = {
    "vit_t": ("mobile_sam.pt", "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt"),
    "vit_b": ("sam_vit_b_01ec64.pth", _FB + "sam_vit_b_01ec64.pth"),
    "vit_l": ("sam_vit_l_0b3195.pth", _FB + "sam_vit_l_0b3195.pth"),
    "vit_h": ("sam_vit_h_4b8939.pth", _FB + "sam_vit_h_4b8939.pth"),
}
_URLS = dict(CHECKPOINTS.values())
# segment_anything's ViT sizes: embed dim, depth, heads, blocks with global attention
_VIT = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise EngineError(f"unknown SAM model kind {kind!r}: use one of {', '.join(KINDS)}")
    return kind


def _within(path: str | Path, roots: list[Path]) -> bool:
    # Both resolved (symlinks and ".." followed) before comparing: a path whose literal form is inside a root but
    # which is, or passes through, a link pointing elsewhere is outside; a symlinked root still matches itself.
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


def _how_to(name: str, kind: str) -> str:
    url = _URLS.get(name) or CHECKPOINTS[kind][1]
    return (f"download {url} and put it in the weights folder (WEIGHTS_DIR), or set SAM_CHECKPOINT to a "
            f"checkpoint path inside that folder")


def resolve_checkpoint(spec: str | None, kind: str, weights_dir: str | Path | None,
                       allowed_roots: list[Path] | tuple[Path, ...] = (), download: bool = True) -> Path:
    """Find the checkpoint file for a model.

    `spec` is either a path (anything with a directory part; a relative one is taken relative to `weights_dir`)
    that must lie inside `weights_dir` or one of `allowed_roots`, or a bare file name looked up in `weights_dir`,
    then in torch's hub cache (`torch.hub.get_dir()/checkpoints`), then downloaded there when it is an official
    checkpoint name (see `CHECKPOINTS`). None means the official checkpoint of `kind`.

    Args:
        spec: a path, a file name or None.
        kind: one of `KINDS` (picks the default file name and the download URL).
        weights_dir: the folder of local weights (WEIGHTS_DIR), or None.
        allowed_roots: other folders a path may point into.
        download: False only looks (for /health: whether the smart tools will work, without fetching anything).

    Returns:
        The path of an existing checkpoint file.

    Raises:
        EngineError: a path outside the allowed folders, or a file that is nowhere and cannot be downloaded.
    """
    _check_kind(kind)
    spec = (spec or "").strip() or CHECKPOINTS[kind][0]
    roots = [Path(r) for r in allowed_roots] + ([Path(weights_dir)] if weights_dir else [])
    if os.path.isabs(spec) or os.sep in spec or "/" in spec or spec in (".", "..") or spec.startswith("~"):
        path = Path(spec).expanduser()
        if not path.is_absolute():
            path = Path(weights_dir or ".") / path
        if not roots or not _within(path, roots):
            where = ", ".join(str(r) for r in roots) or "none configured"
            raise EngineError(f"checkpoint path {spec!r} is outside the allowed folders ({where}); put the file in "
                              f"the weights folder (WEIGHTS_DIR) and name it by its file name")
        if not path.is_file():
            raise EngineError(f"checkpoint {path} does not exist; {_how_to(path.name, kind)}")
        return path.resolve()  # the file that was checked, not a link that could be swapped afterwards
    looked: list[str] = []
    if weights_dir:
        candidate = Path(weights_dir) / spec
        looked.append(str(candidate))
        if candidate.is_file():
            return candidate
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    candidate = hub / spec
    looked.append(str(candidate))
    if candidate.is_file():
        return candidate
    url = _URLS.get(spec)
    if url is not None and not download:
        raise EngineError(f"checkpoint {spec!r} not found (looked in {', '.join(looked)}); it is downloaded at the "
                          f"first click where the machine is online, else {_how_to(spec, kind)}")
    if url is None:
        raise EngineError(f"checkpoint {spec!r} not found (looked in {', '.join(looked)}) and it is not an official "
                          f"SAM/MobileSAM file that could be downloaded; put it in the weights folder (WEIGHTS_DIR)")
    try:
        hub.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s to %s", url, candidate)
        torch.hub.download_url_to_file(url, str(candidate), progress=False)
    except Exception as e:  # offline, proxy, disk full: all end the same way for the user
        raise EngineError(f"checkpoint {spec!r} not found (looked in {', '.join(looked)}) and downloading it "
                          f"failed ({type(e).__name__}: {e}); {_how_to(spec, kind)}") from e
    return candidate


def default_device() -> str:
    """`cuda` when a GPU is usable, else `cpu`."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _import_mobile_sam():
    # mobile_sam imports timm's deprecated paths and re-registers timm's TinyViT names: noise, not problems
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mobile_sam.modeling

    return mobile_sam.modeling


def _tiny_vit_class():
    TinyViT = _import_mobile_sam().TinyViT

    class GridTinyViT(TinyViT):
        """TinyViT whose output grid follows `img_size` (upstream hard-codes 64x64, i.e. 1024 px inputs)."""

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            x = self.patch_embed(x)
            for layer in self.layers:
                x = layer(x)
            b, _, c = x.size()
            g = self.img_size // PATCH
            x = x.view(b, g, g, c).permute(0, 3, 1, 2)
            return self.neck(x)

    return GridTinyViT


def build_sam(kind: str, image_size: int = DEFAULT_IMAGE_SIZE) -> torch.nn.Module:
    """A SAM model with random weights, laid out like the official builders (same state-dict keys).

    Args:
        kind: one of `KINDS`.
        image_size: the encoder's square input size, a multiple of 64 (1024 for the official weights).

    Returns:
        The `Sam` module (from `mobile_sam` for vit_t, `segment_anything` otherwise), in eval mode.
    """
    _check_kind(kind)
    if image_size < 64 or image_size % 64:
        # TinyViT downsamples by 4, then 2, then 2, with windows over each stage: 64 keeps every grid whole
        raise EngineError(f"image_size must be a multiple of 64 (got {image_size})")
    grid = image_size // PATCH
    if kind == "vit_t":
        m = _import_mobile_sam()
        MaskDecoder, PromptEncoder, Sam, TwoWayTransformer = m.MaskDecoder, m.PromptEncoder, m.Sam, m.TwoWayTransformer
        encoder = _tiny_vit_class()(
            img_size=image_size, in_chans=3, num_classes=1000, embed_dims=[64, 128, 160, 320], depths=[2, 2, 6, 2],
            num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0, drop_rate=0.0,
            drop_path_rate=0.0, use_checkpoint=False, mbconv_expand_ratio=4.0, local_conv_size=3,
            layer_lr_decay=0.8)
    else:
        from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

        dim, depth, heads, global_attn = _VIT[kind]
        encoder = ImageEncoderViT(
            depth=depth, embed_dim=dim, img_size=image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=heads, patch_size=PATCH, qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=global_attn, window_size=14, out_chans=256)
    sam = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid),
                                     input_image_size=(image_size, image_size), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                                 transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def _read_state_dict(checkpoint: Path) -> dict:
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EngineError(f"cannot read checkpoint {checkpoint}: {type(e).__name__}: {e}") from e
    for key in ("model", "state_dict"):  # training scripts often wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise EngineError(f"checkpoint {checkpoint} holds a {type(state).__name__}, not a state dict")
    return state


def load_sam(kind: str, checkpoint: Path | None, device: str | None = None, image_size: int | None = None,
             random_init: bool = False) -> torch.nn.Module:
    """Build a SAM model and load its weights.

    Args:
        kind: one of `KINDS`.
        checkpoint: the weights (see `resolve_checkpoint`); None only with `random_init`.
        device: torch device; None picks cuda when available.
        image_size: encoder input size (default 1024). Smaller sizes run much faster but the official ViT
            weights only fit 1024 (their position embeddings are sized for it); MobileSAM's load at any size.
        random_init: allow `checkpoint=None` and keep the random weights (tests, benchmarks of speed).

    Returns:
        The model in eval mode on `device`, with gradients off.

    Raises:
        EngineError: unknown kind, missing checkpoint, or weights that do not fit the model.
    """
    _check_kind(kind)
    size = image_size or DEFAULT_IMAGE_SIZE
    if checkpoint is None and not random_init:
        raise EngineError(f"no checkpoint given for SAM {kind}; {_how_to(CHECKPOINTS[kind][0], kind)}")
    if checkpoint is not None and kind != "vit_t" and size != DEFAULT_IMAGE_SIZE:
        raise EngineError(f"the {kind} weights are made for {DEFAULT_IMAGE_SIZE} px inputs; image_size={size} "
                          f"only works with random weights (or use vit_t)")
    sam = build_sam(kind, size)
    if checkpoint is not None:
        state = _read_state_dict(Path(checkpoint))
        try:
            sam.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise EngineError(f"checkpoint {checkpoint} does not fit SAM {kind} ({first}); is it a "
                              f"{CHECKPOINTS[kind][0]}-style checkpoint?") from e
    sam.requires_grad_(False)
    return sam.to(device or default_device()).eval()


def _state_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_id(kind: str, checkpoint: Path | None, sam: torch.nn.Module | None = None) -> str:
    """A short stable id of what produces the image embeddings, used as the embedding-cache namespace.

    The file's name, size and mtime stand for a checkpoint (hashing gigabytes per start would be slow); a random
    model is identified by its image encoder's weights. The encoder input size is part of the id since it changes
    the embeddings. The mask decoder is not: a retrained decoder reuses the cached embeddings.

    Args:
        kind: one of `KINDS`.
        checkpoint: the loaded checkpoint, or None for a random model (then `sam` is required).
        sam: the loaded model (gives the input size; required without a checkpoint).

    Returns:
        Like `vit_t-1024-3f2a9c1e0b7d`.
    """
    _check_kind(kind)
    size = sam.image_encoder.img_size if sam is not None else DEFAULT_IMAGE_SIZE
    if checkpoint is not None:
        st = Path(checkpoint).stat()
        digest = hashlib.sha1(f"{Path(checkpoint).name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    elif sam is not None:
        digest = _state_digest(sam.image_encoder)
    else:
        raise EngineError("model_id needs the checkpoint or, for a random model, the model itself")
    return f"{kind}-{size}-{digest[:12]}"
