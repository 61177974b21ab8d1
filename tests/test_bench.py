"""The training-speed benchmark runs end to end in its CI size (figures are printed, not asserted)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"(\d+(?:\.\d+)?)"


@pytest.mark.slow
def test_train_speed_quick_prints_positive_ratios():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "train_speed.py"), "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("train_speed", "predict_speed"):
        m = re.search(rf"^{name}: harness {NUMBER} win/s, trainer {NUMBER} win/s, ratio {NUMBER}x \((\w+), (\w+)\)$",
                      proc.stdout, re.MULTILINE)
        assert m, f"no {name} line in:\n{proc.stdout}"
        harness, trainer, ratio = (float(m.group(i)) for i in (1, 2, 3))
        assert harness > 0 and trainer > 0 and ratio > 0
        assert m.group(5) == "cpu"
    assert re.search(r"^loss_curve: .*mean \|harness - trainer\| \d", proc.stdout, re.MULTILINE)
    assert re.search(r"^mfu: peak .*% \(real tokens\)", proc.stdout, re.MULTILINE)
