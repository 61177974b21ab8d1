"""Batches of encoded rows: length-bucketed order, padded tensors, device transfer, batched forward.

Shared by every task kind. A task's encoded data (QA ``Windows``, classification ``Encoded``)
is a set of padded numpy arrays with ``input_ids`` [n, L], ``lengths`` [n], optional
``token_type_ids`` and a ``label_arrays()`` method naming its training targets (e.g.
``start_positions``/``end_positions`` or ``labels``) exactly as the model's forward takes them.
"""

from __future__ import annotations

import inspect
from typing import Callable, Iterator

import numpy as np
import torch

PAD_MULTIPLE = 8


def length_batches(lengths: np.ndarray, batch_size: int, shuffle: bool, rng: np.random.Generator | None,
                   pool: int = 50) -> list[np.ndarray]:
    """Index batches of similar length: shuffle, sort within pools of ``pool`` batches, shuffle batches.

    ``pool=0``: no sorting, consecutive rows of the (shuffled) order, as a random sampler gives them."""
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    if pool == 0:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    span = batch_size * pool
    for s in range(0, len(order), span):
        chunk = order[s:s + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(rows_of, rows: np.ndarray, labels: bool) -> dict[str, torch.Tensor]:
    """Tensors for ``rows``, padded to the batch's longest row rounded up to ``PAD_MULTIPLE``.

    Integer label arrays become int64 (class indices, span positions), float ones float32
    (regression targets).
    """
    width = int(rows_of.lengths[rows].max())
    width = min(rows_of.input_ids.shape[1], -(-width // PAD_MULTIPLE) * PAD_MULTIPLE)
    batch = {
        "input_ids": torch.from_numpy(rows_of.input_ids[rows, :width].astype(np.int64)),
        "attention_mask": torch.from_numpy(
            (np.arange(width)[None, :] < rows_of.lengths[rows, None]).astype(np.int64)),
    }
    if rows_of.token_type_ids is not None:
        batch["token_type_ids"] = torch.from_numpy(rows_of.token_type_ids[rows, :width].astype(np.int64))
    if labels:
        for name, values in rows_of.label_arrays().items():
            kind = np.float32 if np.issubdtype(values.dtype, np.floating) else np.int64
            batch[name] = torch.from_numpy(values[rows].astype(kind))
    return batch


def input_names(model) -> frozenset[str]:
    """The inputs a model's forward takes (e.g. no token_type_ids for DistilBERT).

    Read from the plain model: a ``torch.compile``d module's forward is ``(*args, **kwargs)``.
    """
    model = getattr(model, "_orig_mod", model)
    return frozenset(inspect.signature(model.forward).parameters)


def to_device(batch: dict, names: frozenset[str], device) -> dict:
    """Keep the inputs the model takes and move them (pinned, so asynchronously, on CUDA)."""
    if device.type == "cuda":
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items() if k in names}
    return {k: v.to(device) for k, v in batch.items() if k in names}


@torch.no_grad()
def forward_batches(model, rows_of, batch_size: int, accelerator=None, progress: bool = False,
                    read: Callable = lambda out: (out.logits,), group: int = 16) -> Iterator[tuple]:
    """Run ``model`` over all rows in length-sorted batches; yield ``(rows, *arrays)`` on the host.

    ``read(output)`` picks the tensors to keep (float32 copies); they are copied back ``group``
    batches at a time, so the loop synchronises with the GPU rarely.
    """
    from tqdm.auto import tqdm

    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    model.eval()
    names = input_names(model)
    pending = []
    for rows in tqdm(length_batches(rows_of.lengths, batch_size, False, None), desc="predict", leave=False,
                     disable=not progress, mininterval=1.0):
        batch = to_device(collate(rows_of, rows, False), names, device)
        with (accelerator.autocast() if accelerator is not None else torch.autocast(device.type, enabled=False)):
            out = model(**batch)
        pending.append((rows, *(t.float() for t in read(out))))
        if len(pending) >= group:
            yield from _host(pending)
    yield from _host(pending)


def _host(pending: list) -> Iterator[tuple]:
    for rows, *tensors in pending:
        yield (rows, *(t.cpu().numpy() for t in tensors))
    pending.clear()
