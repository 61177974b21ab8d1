"""Predicting with a finished run: its model and tokenizer read back, a split encoded the way the
run was trained (the run's saved configuration), logits written into the run folder.

Under ``accelerate launch --num_processes N`` prediction is shared out by examples: every process
encodes and predicts its own contiguous share (:func:`shard_examples`), the shares are gathered and
merged by the task (:func:`predict_shared`) on the main process, which alone decodes, scores and writes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.common.errors import HarnessError
from harness.runs import Run


def load_run_model(run: Run, task):
    """(model, tokenizer) of a complete run."""
    import transformers
    from transformers import AutoTokenizer

    from harness.train.models import quiet_transformers

    quiet_transformers()
    if not (run.model_dir / "config.json").is_file():
        raise HarnessError(f"run {run.ref} has no saved model (k-fold trials keep only their logits)",
                           hint="refit the trial (`harness refit`) to get a model that can predict")
    try:
        tok = AutoTokenizer.from_pretrained(str(run.model_dir))
        model = getattr(transformers, task.model_class).from_pretrained(str(run.model_dir))
    except (OSError, ValueError) as e:
        raise HarnessError(f"run {run.ref}: its saved model cannot be read ({str(e).splitlines()[0][:200]})",
                           hint=f"train it again; delete {run.path}") from None
    return model, tok


def shard_examples(n_examples: int, accelerator) -> np.ndarray:
    """Indices of this process's contiguous share of ``n_examples`` (sizes differ by at most one; all of
    them with one process)."""
    n = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    return np.array_split(np.arange(n_examples), n)[rank]


def predict_shared(task, model, rows, index: np.ndarray, example_ids: Sequence[str], info, batch_size: int,
                   accelerator, progress: bool = False):
    """The task's logits object for all ``example_ids``, on the main process; None on the others.

    One process: ``task.predict`` of ``rows`` (the encoding of all examples). N processes: ``rows``
    encodes only this process's share ``index`` of the examples (None for an empty share); every
    process predicts its rows, the (index, logits) pairs are gathered to every process with
    accelerate's ``gather_object``, and the main process merges them with ``task.merge_folds``. Each
    example is predicted by exactly one process and nothing is padded, so shares of uneven size
    (the last one, or empty ones when there are fewer examples than processes) need no trimming.
    """
    if accelerator is None or accelerator.num_processes == 1:
        return task.predict(model, rows, info, batch_size, accelerator, progress)
    from accelerate.utils import gather_object

    main = accelerator.is_main_process
    mine = task.predict(model, rows, info, batch_size, accelerator, progress and main) if rows is not None else None
    parts = gather_object([(np.asarray(index), mine)])
    if not main:
        return None
    return task.merge_folds([(i, logits) for i, logits in parts if logits is not None], list(example_ids), {})


def predict_run(run: Run, task, examples: Sequence, split: str, batch_size: int | None = None,
                progress: bool = True, cache_dir=None):
    """Logits of ``examples`` by a complete run, saved as its ``logits/SPLIT.npz``; returns the path
    (under ``accelerate launch``: predicted in shares, written by the main process)."""
    from harness.train.loop import Launch, make_accelerator

    cfg = run.run_config()
    info = run.config().get("label_info") or {}
    model, tokenizer = load_run_model(run, task)
    accelerator = make_accelerator(cfg.training)
    index = shard_examples(len(examples), accelerator)
    mine = examples if accelerator.num_processes == 1 else [examples[i] for i in index]
    rows = (task.encode(tokenizer, mine, cfg, False, info, cache_dir)
            if len(mine) or accelerator.num_processes == 1 else None)
    model = accelerator.prepare(model)
    logits = predict_shared(task, accelerator.unwrap_model(model), rows, index, [ex.id for ex in examples], info,
                            batch_size or cfg.training.eval_batch_size, accelerator, progress)
    return Launch().decide(lambda: run.save_logits(split, task, logits))
