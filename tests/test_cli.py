"""The CLI as a user types it: help texts, one-line errors with hints, init/score round trips."""

import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from harness.cli import main


def run(*args, cwd=None):
    runner = CliRunner()
    if cwd is not None:
        args = ("-w", str(cwd)) + args
    return runner.invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", [[], ["init"], ["recipes"], ["train"], ["predict"], ["submit"], ["score"],
                                     ["demo"]])
def test_every_command_explains_itself(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output and len(result.output.splitlines()) > 4


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    out = result.output
    assert "Traceback" not in out
    assert out.startswith("error: ")
    for n in needles:
        assert n in out, out


def test_missing_competition_is_one_line_with_hint(tmp_path):
    _one_line_error(run("train", "--recipe", "tiny", cwd=tmp_path), "no competition found", "harness init")


def test_unknown_recipe_and_bad_override(tmp_path, demo_comp):
    _one_line_error(run("train", "--recipe", "nope", cwd=demo_comp), "unknown recipe 'nope'", "macbert")
    _one_line_error(run("train", "--recipe", "tiny", "--set", "lrr=1", cwd=demo_comp), "unknown parameter 'lrr'")
    _one_line_error(run("train", "--recipe", "tiny", "--set", "lr", cwd=demo_comp), "key=value")


def test_unknown_run(demo_comp):
    _one_line_error(run("submit", "--run", "ghost", cwd=demo_comp), "no run named 'ghost'")
    _one_line_error(run("submit", cwd=demo_comp), "nothing to submit")


def test_init_writes_a_competition_and_counts_questions(tmp_path, demo_files):
    result = run("init", "mine", "--train", str(demo_files / "train.json"), "--dev", str(demo_files / "dev.json"),
                 "--test", str(demo_files / "test.json"), "--strip-commas", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "(qa, hw7, zh, metric em)" in result.output and "test 300" in result.output
    from harness.competition import load_competition

    comp = load_competition(tmp_path)
    assert comp.name == "mine" and comp.strip_commas and comp.layout == "hw7"
    assert len(comp.examples("dev")) == 300
    _one_line_error(run("init", "x", "--train", str(tmp_path / "nope.json"), cwd=tmp_path), "train file not found")


def test_score_gold_against_itself_and_a_broken_file(tmp_path, demo_files):
    from harness.submission import write_submission
    from harness.tasks.qa.readers import read_examples

    gold = read_examples(demo_files / "dev.json")
    pred = tmp_path / "pred.csv"
    write_submission(pred, {ex.id: ex.answers[0] for ex in gold}, [ex.id for ex in gold])
    result = run("score", str(pred), "--gold", str(demo_files / "dev.json"))
    assert result.exit_code == 0, result.output
    assert "EM  100.00" in result.output and "F1  100.00" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"questions": [', encoding="utf-8")
    _one_line_error(run("score", str(pred), "--gold", str(bad)), "bad.json")


def test_offline_hub_checkpoint_fails_fast_with_the_fix(demo_comp):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(demo_comp / "hf-empty")}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "harness", "-w", str(demo_comp), "train", "--recipe", "macbert"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "hfl/chinese-macbert-base" in proc.stderr and "--model-path" in proc.stderr and "HF_HOME" in proc.stderr
    assert time.time() - t0 < 60


def test_recipes_lists_the_registry():
    result = run("recipes")
    for name in ("macbert", "macbert-large", "bert-base-chinese", "roberta-wwm-ext", "roberta-wwm-ext-large",
                 "mrc-macbert-large", "distilbert", "bert-base-cased", "minilm", "tiny"):
        assert f"\n{name} " in "\n" + result.output


def test_workspace_recipe_toml_and_overrides(tmp_path):
    from harness.config import parse_overrides
    from harness.recipes import get_recipe

    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mine.toml").write_text(
        'checkpoint = "/models/x"\nlang = "zh"\n[defaults]\nlr = 5e-5\n[space]\nlr = ["log", 1e-5, 1e-4]\n')
    r = get_recipe("mine", tmp_path)
    assert r.defaults["lr"] == 5e-5 and r.search_space()["lr"] == ["log", 1e-5, 1e-4]
    (tmp_path / "recipes" / "mine.toml").write_text(
        'checkpoint = "/models/x"\n[space]\nlr = ["log", 1e-5, 1e-4]\n[task_space.classification]\n'
        'lr = ["log", 1e-6, 1e-5]\n')
    r = get_recipe("mine", tmp_path)  # a task kind's space entries win for that kind only
    assert r.search_space("classification")["lr"] == ["log", 1e-6, 1e-5]
    assert r.search_space("qa")["lr"] == r.search_space()["lr"] == ["log", 1e-5, 1e-4]
    assert get_recipe("minilm").search_space("classification")["lr"] != get_recipe("minilm").search_space("qa")["lr"]
    assert parse_overrides(["lr=3e-5", "max_offset=None", "name=abc"]) == {"lr": 3e-5, "max_offset": None,
                                                                           "name": "abc"}


def test_a_fit_that_keeps_one_member_says_so_and_names_the_remedy(tmp_path, monkeypatch):
    import harness.pipeline as pipeline
    from harness.cli import main

    def fake_submit(comp, ws, members, name, split, weights=None, fit=None, options=None):
        w = [1.0, 0.0, 0.0] if fit else [1.0] * len(members)
        return {"sidecar": {"members": members, "weights": w, "validation": {"kind": "dev", "em": 27.5, "n": 400}},
                "csv": str(tmp_path / "x.csv"), "n": 3, "result": str(tmp_path / "result.csv")}

    monkeypatch.setattr(pipeline, "submit", fake_submit)
    monkeypatch.setattr("harness.cli.common._Ctx.competition", property(lambda self: None))
    runner = CliRunner()
    fitted = runner.invoke(main, ["-w", str(tmp_path), "submit", "--runs", "s/t3,s/t0,s/t1", "--fit-weights"])
    equal = runner.invoke(main, ["-w", str(tmp_path), "submit", "--runs", "s/t3,s/t0,s/t1"])
    assert "keep s/t3 alone" in fitted.output and "harness refit" in fitted.output, fitted.output
    assert "alone" not in equal.output, equal.output
