"""Freeing memory between the trainings of one process (search trials, folds, refit seeds)."""

from __future__ import annotations

import gc
import traceback


def clear_frames(exc: BaseException) -> None:
    """Drop the locals of the frames an exception holds (the model and optimizer of a pruned run)."""
    tb = exc.__traceback__
    if tb is not None:
        traceback.clear_frames(tb)


def free_memory(cuda_only: bool = False) -> None:
    """gc + ``torch.cuda.empty_cache()`` (between trials; between folds only on CUDA: gc costs ~0.5 s)."""
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        cuda = False
    if cuda_only and not cuda:
        return
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
