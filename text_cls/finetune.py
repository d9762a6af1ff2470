"""Full fine-tuning of the transformer on the annotated texts, all controls jointly.

Each control gets a linear head over the normalised mean-pooled embedding, initialised from its zero-shot
prototypes (so training starts from the zero-shot classifier, not from noise) and scaled by 1 / temperature.
Single-choice controls use cross-entropy, multi-choice ones binary cross-entropy, both over the labels the answers
use; each example contributes only to the controls it has an answer for. Only the transformer is kept: the caller
refits its logistic heads on the new embeddings. `TextClassifier` fine-tunes by default once a control has 40
answers ("auto"), after `finetune_check` found it not worse on a held-out fold; given open texts it fine-tunes a
second time with the ones it is surest of (`self_training`).
"""
from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .encoder import Encoder, mean_pool, normalize

# Start of the multi-choice biases: typical cosine similarity between a text and an unrelated label prototype
# (about 0.12 to 0.2 on TREC-6), so every label starts unlikely.
_MULTI_INIT_BIAS = -0.2
# The heads start from prototypes and the transformer from pre-trained weights, but the heads still need to move
# faster than a lr meant for pre-trained weights allows.
_HEAD_LR_FACTOR = 30.0


@dataclass
class FinetuneTask:
    """One control's training data for fine-tuning.

    Attributes:
        multi: Multi-choice (BCE) or single-choice (cross-entropy).
        rows: Indices of the texts that have an answer for this control.
        targets: (len(rows),) label indices, or (len(rows), n_labels) 0/1 for multi-choice.
        prototypes: (n_labels, dim) zero-shot prototypes used to initialise the head.
    """

    multi: bool
    rows: np.ndarray
    targets: np.ndarray
    prototypes: np.ndarray


def capped(tasks: Sequence[FinetuneTask], limit: int, seed: int) -> list[FinetuneTask]:
    """The tasks restricted to at most `limit` answered texts, a seeded uniform sample of the texts any task
    answers (every task keeps its answers among them); all of them when there are no more than `limit`."""
    used = np.unique(np.concatenate([np.asarray(task.rows, dtype=np.int64) for task in tasks] or [np.zeros(0, int)]))
    if len(used) <= limit:
        return list(tasks)
    chosen = np.random.default_rng(seed).choice(used, limit, replace=False)
    out = []
    for task in tasks:
        keep = np.isin(task.rows, chosen)
        out.append(replace(task, rows=np.asarray(task.rows)[keep], targets=np.asarray(task.targets)[keep]))
    return out


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a fine-tune repeats exactly (on the same device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def finetune_encoder(
    encoder: Encoder,
    texts: Sequence[str],
    tasks: Sequence[FinetuneTask],
    epochs: int = 3,
    lr: float = 3e-5,
    seed: int = 0,
    batch_size: int = 16,
    temperature: float = 0.04,
) -> Encoder:
    """Fine-tune a copy of the encoder's transformer; the given encoder is left untouched.

    Args:
        encoder: Source of the transformer, tokenizer, device and settings.
        texts: All training texts (tasks index into them).
        tasks: One entry per control that takes part.
        epochs: Passes over the texts.
        lr: AdamW learning rate of the transformer (heads use a larger one).
        seed: Makes initialisation, dropout and shuffling repeatable.
        batch_size: Texts per step.
        temperature: Logit scale 1 / temperature, as in zero-shot.

    Returns:
        A new `Encoder` (empty cache) wrapping the fine-tuned transformer.
    """
    seed_everything(seed)
    device = encoder.device
    model = copy.deepcopy(encoder.model).to(device).train()
    tokenizer = copy.deepcopy(encoder.tokenizer)
    heads, task_targets = _task_heads(tasks, len(texts))
    heads.to(device).train()
    used = torch.as_tensor(sorted({int(i) for task in tasks for i in task.rows}), dtype=torch.long)
    optimizer, scheduler = _optimizer(model, heads, lr, epochs * max(1, -(-len(used) // batch_size)))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = used[torch.randperm(len(used), generator=generator)]
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in idx.tolist()],
                padding=True,
                truncation=True,
                max_length=encoder.max_length,
                return_tensors="pt",
            )
            batch = {k: v.to(device) for k, v in batch.items()}
            pooled = normalize(mean_pool(model(**batch).last_hidden_state, batch["attention_mask"]))
            loss = _loss(pooled, idx, tasks, heads, task_targets, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(model.parameters()) + list(heads.parameters()), 1.0)
            optimizer.step()
            scheduler.step()
    model.eval()
    # Served in PyTorch (an encoder given its model always is): 1.5x slower than int8 ONNX (text_speed.json), but
    # exporting each fine-tune to int8 would add ~15 s and a 30 MB file to every trained version (not measured
    # for accuracy on a fine-tuned transformer).
    return Encoder(
        encoder.name_or_path,
        device=device,
        batch_size=encoder.batch_size,
        max_length=encoder.max_length,
        cache_bytes=encoder.cache_bytes,
        model=model,
        tokenizer=tokenizer,
    )


def _task_heads(
    tasks: Sequence[FinetuneTask], n_texts: int
) -> tuple[torch.nn.ModuleList, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """A linear head per task, started from its prototypes, and per task the target of each text (or "no
    answer") as dense tensors indexed by text position, and which labels the answers use."""
    heads = torch.nn.ModuleList()
    task_targets: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for task in tasks:
        n_labels, dim = task.prototypes.shape
        head = torch.nn.Linear(dim, n_labels)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(np.asarray(task.prototypes, dtype=np.float32)))
            head.bias.fill_(_MULTI_INIT_BIAS if task.multi else 0.0)
        heads.append(head)
        rows = torch.as_tensor(task.rows, dtype=torch.long)
        has = torch.zeros(n_texts, dtype=torch.bool)
        has[rows] = True
        if task.multi:
            target = torch.zeros(n_texts, n_labels)
            target[rows] = torch.as_tensor(task.targets, dtype=torch.float32)
        else:
            target = torch.zeros(n_texts, dtype=torch.long)
            target[rows] = torch.as_tensor(task.targets, dtype=torch.long)
        task_targets.append((has, target, torch.as_tensor(_used_labels(task, n_labels))))
    return heads, task_targets


def _optimizer(model: torch.nn.Module, heads: torch.nn.Module, lr: float, steps: int):
    """AdamW (the heads at a larger lr) and its schedule over `steps` steps."""
    total_steps = max(1, steps)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.parameters(), "lr": lr},
            {"params": heads.parameters(), "lr": lr * _HEAD_LR_FACTOR},
        ],
        weight_decay=0.01,
    )
    warmup = max(1, total_steps // 10)
    # Linear warm-up then linear decay: the usual schedule for BERT fine-tuning, steadier on tiny data.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    )
    return optimizer, scheduler


def _used_labels(task: FinetuneTask, n_labels: int) -> np.ndarray:
    """Which labels the answers use: a single-choice label answered at least once, a multi-choice one chosen at
    least once."""
    targets = np.asarray(task.targets)
    if task.multi:
        return targets.reshape(len(targets), n_labels).sum(axis=0) > 0
    return np.bincount(targets.astype(np.int64), minlength=n_labels) > 0


def _loss(pooled: torch.Tensor, idx: torch.Tensor, tasks: Sequence[FinetuneTask], heads: torch.nn.ModuleList,
          task_targets: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], temperature: float) -> torch.Tensor:
    """The batch's loss summed over the tasks; each text counts only for the tasks it has an answer for.

    Labels the answers never use take no part: training texts away from them would erase what zero-shot knows
    of them (4 TREC-6 classes, 40 labels of 2: Human recall 0.51 zero-shot, 0.18 after a fine-tune over every
    label, 0.50 over the used ones: by hand, 3 seeds; test_finetune.py checks it)."""
    loss = pooled.new_zeros(())
    for task, head, (has, target, used) in zip(tasks, heads, task_targets):
        mask = has[idx].to(pooled.device)
        if not bool(mask.any()):
            continue
        used = used.to(pooled.device)
        logits = head(pooled[mask])[:, used] / temperature
        wanted = target[idx].to(pooled.device)[mask]
        if task.multi:
            loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(logits, wanted[:, used])
        else:
            # Targets renumbered among the used labels (the columns kept).
            position = torch.cumsum(used.long(), 0) - 1
            loss = loss + torch.nn.functional.cross_entropy(logits, position[wanted])
    return loss
