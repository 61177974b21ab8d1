"""bench/decode.py times HF's own utils_qa.py when given its path (--hf-utils-qa): the datasets it
builds carry run_qa's columns, so a postprocess_qa_predictions that reads them row by row, as HF's
does, gets the same answers as the restatement on the windows themselves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Stands in for HF's file (not shipped here): HF's signature and data access (examples["id"],
# one features row at a time, offset_mapping with None outside the context), then the
# restatement's algorithm on windows rebuilt from those rows.
SHIM = f'''
import sys
import numpy as np
sys.path.insert(0, {str(ROOT / "tests")!r})
from hf_postprocess import postprocess_qa_predictions as restated
from harness.tasks.qa.example import Example
from harness.tasks.qa.windows import Windows

def postprocess_qa_predictions(examples, features, predictions, version_2_with_negative=False, n_best_size=20,
                               max_answer_length=30, null_score_diff_threshold=0.0, output_dir=None, prefix=None,
                               log_level=None):
    index = {{k: i for i, k in enumerate(examples["id"])}}
    rows = [features[i] for i in range(len(features))]
    offsets = np.array([[o if o is not None else (-1, -1) for o in r["offset_mapping"]] for r in rows], np.int32)
    n, length = offsets.shape[:2]
    assert all(len(r["input_ids"]) == length and len(r["attention_mask"]) == length for r in rows)
    windows = Windows(input_ids=np.array([r["input_ids"] for r in rows], np.int32), token_type_ids=None,
                      lengths=np.full(n, length, np.int32), offsets=offsets,
                      example_index=np.array([index[r["example_id"]] for r in rows], np.int32),
                      cls_index=np.zeros(n, np.int32))
    exs = [Example(id=x["id"], question="?", context=x["context"]) for x in examples]
    answers, _ = restated(windows, exs, *predictions, n_best_size, max_answer_length)
    return answers
'''


def test_decode_bench_times_a_given_utils_qa_on_run_qa_shaped_datasets(tmp_path):
    shim = tmp_path / "utils_qa.py"
    shim.write_text(SHIM)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "decode.py"), "--quick", "--check", "5",
                           "--hf-utils-qa", str(shim)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    own = [line for line in proc.stdout.splitlines() if line.startswith("hf-own[")]
    assert len(own) >= 2, proc.stdout  # each window set, both logit kinds
    for line in own:
        assert "speed-up" in line and "utils_qa.py" in line, line
        same = line.rsplit("restatement's ", 1)[1]
        got, total = same.split("/")
        assert int(got) == int(total) > 0, line


def test_decode_bench_names_a_missing_utils_qa(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "decode.py"), "--quick",
                           "--hf-utils-qa", str(tmp_path / "nope.py")], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode != 0
    assert "no such file" in proc.stderr and "nope.py" in proc.stderr
