"""Predicting with a finished run: its model and tokenizer read back, a split encoded the way the
run was trained (the run's saved configuration), logits written into the run folder."""

from __future__ import annotations

from typing import Sequence

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


def predict_run(run: Run, task, examples: Sequence, split: str, batch_size: int | None = None,
                progress: bool = True, cache_dir=None):
    """Logits of ``examples`` by a complete run, saved as its ``logits/SPLIT.npz``; returns the path."""
    from harness.train.loop import make_accelerator

    cfg = run.run_config()
    info = run.config().get("label_info") or {}
    model, tokenizer = load_run_model(run, task)
    rows = task.encode(tokenizer, examples, cfg, False, info, cache_dir)
    accelerator = make_accelerator(cfg.training)
    model = accelerator.prepare(model)
    logits = task.predict(accelerator.unwrap_model(model), rows, info, batch_size or cfg.training.eval_batch_size,
                          accelerator, progress)
    return run.save_logits(split, task, logits)
