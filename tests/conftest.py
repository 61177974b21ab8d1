"""Shared fixtures: the optional real data folder (../shared/data) and a small tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Under pytest-xdist (``make test`` runs two workers) every worker and the processes its tests start
# compute on one thread: two 2-thread torch processes on 2 cores spin against each other.
IN_WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))
if IN_WORKER:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TRAIN_THREADS = 1 if IN_WORKER else 2  # torch threads for the tests that train in-process
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


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory):
    """The generated demo competition files (train/dev/test/test_gold, HW7 layout)."""
    from harness.tasks.qa.demo import generate_demo

    out = tmp_path_factory.mktemp("demo-data")
    generate_demo(out, seed=0)
    return out


@pytest.fixture()
def demo_comp(tmp_path, demo_files):
    """A workspace with competition.toml declaring the demo files."""
    from harness.competition import init_competition

    init_competition("demo", tmp_path, str(demo_files / "train.json"), str(demo_files / "dev.json"),
                     str(demo_files / "test.json"), str(demo_files / "test_gold.json"), layout="hw7")
    return tmp_path
