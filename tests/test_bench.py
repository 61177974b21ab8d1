"""The training-speed benchmark runs end to end in its CI size (figures are printed, not asserted), and its
harness side runs the shipped loop: ``harness.train.loop.train_epoch`` takes every training step."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"(\d+(?:\.\d+)?)"

# Runs bench/train_speed.py as __main__ (same argv, same code path as the command line) after wrapping the
# shipped functions with call counters; a benchmark that copied the training step instead of calling
# train_epoch would leave the counters short of the steps it reports.
COUNTING_RUN = r"""
import json, runpy, sys
import harness.tasks.qa.task as qa_task
import harness.train.loop as loop

calls = {"train_epoch": 0, "train_epoch_batches": 0, "make_optimizer": 0, "make_accelerator": 0,
         "predict_windows": 0}

def counted(module, name, batches_at=None):
    shipped = getattr(module, name)
    def wrapper(*args, **kwargs):
        calls[name] += 1
        if batches_at is not None:
            calls[name + "_batches"] += len(args[batches_at])
        return shipped(*args, **kwargs)
    setattr(module, name, wrapper)

counted(loop, "train_epoch", batches_at=2)
counted(loop, "make_optimizer")
counted(loop, "make_accelerator")
counted(qa_task, "predict_windows")
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
print("shipped_calls: " + json.dumps(calls))
"""


@pytest.mark.slow
def test_train_speed_quick_prints_positive_ratios(tmp_path):
    out = tmp_path / "train_speed.json"
    proc = subprocess.run([sys.executable, "-c", COUNTING_RUN, str(ROOT / "bench" / "train_speed.py"), "--quick",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("train_speed", "predict_speed"):
        m = re.search(rf"^{name}: harness {NUMBER} win/s, trainer {NUMBER} win/s, ratio {NUMBER}x \((\w+), (\w+)\)$",
                      proc.stdout, re.MULTILINE)
        assert m, f"no {name} line in:\n{proc.stdout}"
        harness, trainer, ratio = (float(m.group(i)) for i in (1, 2, 3))
        assert harness > 0 and trainer > 0 and ratio > 0
        assert m.group(5) == "cpu"
    assert re.search(r"^loss_curve: .*mean \|harness - trainer\| \d", proc.stdout, re.MULTILINE)
    assert re.search(r"^loss_fixed: .*harness \d+\.\d+, trainer \d+\.\d+$", proc.stdout, re.MULTILINE)
    assert re.search(r"^mfu: peak .*% \(real tokens\)", proc.stdout, re.MULTILINE)

    # the harness side trained and predicted through the shipped functions, every step by train_epoch
    m = re.search(r"^shipped_calls: (\{.*\})$", proc.stdout, re.MULTILINE)
    assert m, proc.stdout[-3000:]
    calls = json.loads(m.group(1))
    (result,) = json.loads(out.read_text())["results"]
    steps = result["args"]["steps"]
    harness = result["harness_train"]
    assert calls["train_epoch"] >= 2  # at least the warm-up steps and the timed ones
    assert calls["train_epoch_batches"] == steps == len(harness["loss"])  # every harness step, none elsewhere
    assert calls["train_epoch"] == harness["train_epoch_calls"]
    assert calls["make_optimizer"] >= 1 and calls["make_accelerator"] >= 1
    assert calls["predict_windows"] >= 2  # the warm-up batch and the timed pass
