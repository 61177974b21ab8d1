"""Shared fixtures: the optional real data folder (../shared/data) and a small tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """Path of a file under ../shared/data; skips the calling test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def zh_tokenizer():
    """bert-base-chinese WordPiece tokenizer from the shared vocab (skips when absent)."""
    from transformers import BertTokenizerFast

    # v5: the vocab path must be positional; vocab_file= is silently ignored
    return BertTokenizerFast(str(shared_file("vocab/bert-base-chinese-vocab.txt")))
