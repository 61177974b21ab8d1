"""Nothing silently wrong: runs are all or nothing, result.csv only ever holds a complete test
submission, every bad input is one line (exit 2) that writes nothing, the language is detected, a
file of another split is refused, missing paths are named as such.

Everything goes through the command line (click's CliRunner, or subprocesses for kills and for a
read-only or full disk). Training uses the offline ``tiny`` recipe on a small demo competition
with ``max_steps`` so a run takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--set", "epochs=1", "--set", "max_steps=4", "--set", "batch_size=16"]


def run(ws, *args):
    return CliRunner().invoke(main, ["-w", str(ws), *args], catch_exceptions=False)


def one_line(result, *needles):
    """Exit 2, no traceback, an ``error:`` line (+ at most a hint), each needle present."""
    out = result.output if hasattr(result, "output") else result.stdout + result.stderr
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code == 2, out
    assert "Traceback" not in out, out
    lines = [x for x in out.splitlines() if x.strip()]
    errors = [i for i, x in enumerate(lines) if x.startswith("error: ")]
    assert errors, out
    assert len(lines) - errors[0] <= 2, out  # the error line and its hint are the last thing printed
    for n in needles:
        assert n in out, out


def harness_cmd(ws, *args):
    return [sys.executable, "-m", "harness", "-w", str(ws), *args]


def sub_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}


@pytest.fixture()
def demo(tmp_path):
    """A small demo competition (HW7 layout, Chinese) in a fresh workspace."""
    from harness.competition import init_competition
    from harness.tasks.qa.demo import generate_demo

    p = generate_demo(tmp_path / "data", seed=0, n_train=120, n_dev=40, n_test=30)
    init_competition("demo", tmp_path, str(p["train"]), str(p["dev"]), str(p["test"]), str(p["test_gold"]),
                     layout="hw7", lang="zh")
    return tmp_path


# ---- bad inputs: one line, exit 2, nothing written ------------------------------------------------

@pytest.mark.parametrize("setting, needle", [
    ("lr=abc", "lr='abc'"), ("batch_size=0", "batch_size must be an integer >= 1"), ("grad_accum=0", "grad_accum"),
    ("eval_batch_size=0", "eval_batch_size"), ("max_offset=abc", "max_offset"), ("lr=-1", "lr must be a number > 0"),
    ("epochs=0", "epochs must be an integer >= 1"), ("epochs=-1", "epochs"), ("max_steps=-5", "max_steps"),
    ("warmup_ratio=2", "warmup_ratio must be a number in [0, 1]"), ("seed=1.5", "seed must be an integer"),
    ("max_answer_length=0", "max_answer_length"), ("learning_rate=1e-4", "did you mean 'lr'"),
    ("doc_stride=500", "doc_stride=500 must be smaller"), ("mixed_precision=fp8", "one of auto, no, fp16, bf16"),
])
def test_bad_set_values_are_one_line_before_anything_is_written(demo, setting, needle):
    one_line(run(demo, "train", "--recipe", "tiny", "--set", setting, "--name", "x"), needle)
    assert not (demo / "runs").exists() or not list((demo / "runs").iterdir())


@pytest.mark.parametrize("toml, needle", [
    ('checkpoint = "/m"\nlearning_rate = 1\n', "unknown recipe key 'learning_rate'"),
    ('checkpoint = "/m"\n[defaults]\nlr = "fast"\n', "lr='fast'"),
    ('checkpoint = "/m"\n[defaults]\nepochs = 2.5\n', "epochs"),
    ('checkpoint = "/m"\n[space]\nlr = ["log", 0, 1]\n', "log range needs low > 0"),
    ('checkpoint = "/m"\n[space]\nepochs = ["int", 0, 3]\n', "epochs"),
    ('[defaults]\nlr = 1e-4\n', "needs a checkpoint"),
    ('checkpoint = "/m"\nlang = 3\n', "lang must be a string"),
    ('checkpoint = "/m"\n[task_space.classification]\nlr = ["log", 0, 1]\n', "[task_space.classification]"),
])
def test_a_bad_recipe_file_is_one_line_even_for_harness_recipes(demo, toml, needle):
    (demo / "recipes").mkdir()
    (demo / "recipes" / "mine.toml").write_text(toml)
    one_line(run(demo, "recipes"), "mine.toml", needle)


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t.replace('train = "', 'train = 123\n# "'), "train = 123 must be a string"),
    (lambda t: t + "\nsurprise = 1\n", "unknown key 'surprise'"),
    (lambda t: t.replace("[submission]", "[submission]\ncolumns = 1"), "unknown key 'columns' in [submission]"),
    (lambda t: t.replace('lang = "zh"', 'lang = "fr"'), "unknown lang 'fr'"),
    (lambda t: t.replace('metric = "em"', 'metric = "mcc"'), "metric 'mcc' is not a qa metric"),
    (lambda t: t + "\n[options]\ntext_column = 'x'\n", "unknown key 'text_column' in [options]"),
])
def test_a_bad_competition_file_is_one_line(demo, edit, needle):
    path = demo / "competition.toml"
    path.write_text(edit(path.read_text()))
    one_line(run(demo, "train", "--recipe", "tiny"), needle)


@pytest.mark.parametrize("args, needle", [
    (["--trials", "0"], "--trials 0"), (["--trials", "-3"], "--trials -3"), (["--timeout", "-1"], "--timeout"),
    (["--folds", "1"], "--folds 1"), (["--sampler", "tpe(foo=1)"], "cannot build sampler"),
    (["--pruner", "median(bar=2)"], "cannot build pruner"), (["--sampler", "nope"], "bad sampler"),
    (["--set", "lr=abc"], "lr='abc'"), (["--space", "lr=['log', 0, 1]"], "log range"),
])
def test_bad_search_arguments_are_refused_before_a_study_exists(demo, args, needle):
    one_line(run(demo, "search", "--recipe", "tiny", "--study", "s", *args), needle)
    assert not (demo / "studies" / "s" / "study.db").exists()
    assert not (demo / "studies" / "s" / "search.json").exists()


def test_a_failed_init_leaves_the_existing_competition_alone(demo, tmp_path):
    before = (demo / "competition.toml").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text('{"questions": [], "paragraphs": []}')
    one_line(run(demo, "init", "demo2", "--train", str(bad)), "holds no examples")
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "1", "question": "q", '
                      '"answers": [{"text": "zzz", "answer_start": 0}]}]}]}]}')
    one_line(run(demo, "init", "demo2", "--train", str(broken)), "broken.json")
    assert (demo / "competition.toml").read_text() == before


def test_an_empty_training_set_is_one_line(demo, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"data": []}))
    one_line(run(tmp_path, "init", "e", "--train", str(empty)), "holds no examples")


def test_a_json_file_with_a_bom_reads(tmp_path):
    hw7 = json.loads(Path(shared_file("hw7/hw7_dev.json")).read_text(encoding="utf-8"))
    hw7 = {"questions": hw7["questions"][:30], "paragraphs": hw7["paragraphs"]}
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(hw7, ensure_ascii=False).encode("utf-8"))
    r = run(tmp_path, "init", "bom", "--train", str(path))
    assert r.exit_code == 0, r.output
    assert "hw7" in r.output and "train 30" in r.output


def test_a_missing_model_path_is_named_as_a_path(demo):
    one_line(run(demo, "train", "--recipe", "minilm", "--model-path", "/nonexistent/model", *FAST),
             "'/nonexistent/model' does not exist")
    r = run(demo, "train", "--recipe", "minilm", "--model-path", "/nonexistent/model", *FAST)
    assert "Hub" not in r.output and "hf download" not in r.output


# ---- the language ----------------------------------------------------------------------------------

def test_init_detects_english_and_training_warns_on_a_wrong_declaration(tmp_path):
    squad = json.loads(Path(shared_file("squad/squad_v1.1_dev_even_articles.json")).read_text())
    squad["data"] = squad["data"][:1]
    path = tmp_path / "en.json"
    path.write_text(json.dumps(squad))
    r = run(tmp_path, "init", "en", "--train", str(path), "--dev", str(path))
    assert r.exit_code == 0, r.output
    assert "language: en" in r.output and 'lang = "en"' in (tmp_path / "competition.toml").read_text()
    toml = tmp_path / "competition.toml"
    toml.write_text(toml.read_text().replace('lang = "en"', 'lang = "zh"'))
    r = run(tmp_path, "train", "--recipe", "tiny", "--name", "w", *FAST)
    assert r.exit_code == 0, r.output
    assert 'declares lang = "zh" but its training text looks English' in r.output


def test_init_detects_chinese(tmp_path):
    r = run(tmp_path, "init", "zh", "--train", str(shared_file("hw7/hw7_dev.json")))
    assert r.exit_code == 0, r.output
    assert "language: zh" in r.output


# ---- runs are all or nothing -------------------------------------------------------------------------

def _wait_for(predicate, proc, seconds=240):
    deadline = time.time() + seconds
    while not predicate():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["mid-epoch", "while saving"])
def test_a_killed_training_leaves_no_usable_run(demo, moment):
    args = ["train", "--recipe", "tiny", "--name", "k", "--set", "epochs=3", "--set", "batch_size=8"]
    proc = subprocess.Popen(harness_cmd(demo, *args), env=sub_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        if moment == "mid-epoch":
            _wait_for(lambda: any((p / "train.log").exists() for p in (demo / "runs").glob(".k.partial-*")), proc)
        else:
            _wait_for(lambda: any((p / "model" / "config.json").exists() for p in (demo / "runs").glob(".k.partial-*")),
                      proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (demo / "runs" / "k").exists()  # only the hidden partial folder
    one_line(run(demo, "submit", "--run", "k"), "no run named 'k'")
    assert not (demo / "result.csv").exists()
    r = run(demo, "train", "--recipe", "tiny", "--name", "k", *FAST)  # the name is free again
    assert r.exit_code == 0, r.output
    assert not list((demo / "runs").glob(".k.partial-*"))  # the dead partial was swept


def test_an_incomplete_or_damaged_run_is_refused_with_the_reason(demo):
    r = run(demo, "train", "--recipe", "tiny", "--name", "ok", *FAST)
    assert r.exit_code == 0, r.output
    run_dir = demo / "runs" / "ok"
    (run_dir / "model" / "tokenizer_config.json").write_text("")  # what a kill during save_pretrained left
    one_line(run(demo, "submit", "--run", "ok"), "run ok is not usable", "tokenizer_config.json has 0 bytes")
    (run_dir / "COMPLETE").unlink()
    one_line(run(demo, "predict", "--run", "ok"), "run ok is not usable", "was not finished")
    assert not (demo / "result.csv").exists()


def test_a_diverging_run_stops_with_one_line_and_is_not_saved(demo):
    one_line(run(demo, "train", "--recipe", "tiny", "--name", "nan", "--set", "lr=1e6", "--set", "epochs=1",
                 "--set", "batch_size=16"), "loss became nan", "lower lr")
    assert not (demo / "runs" / "nan").exists() and not list((demo / "runs").glob(".nan*"))


@pytest.mark.slow
def test_a_diverging_trial_fails_and_the_search_goes_on(demo):
    r = run(demo, "search", "--recipe", "tiny", "--study", "s", "--trials", "2", "--quiet", *FAST,
            "--space", "lr=['cat', [1e6, 1e-3]]", "--sampler", "random", "--pruner", "none")
    assert r.exit_code == 0, r.output
    from harness.common.workspace import Workspace
    from harness.search.storage import load_study

    trials = load_study(Workspace(demo), "s").get_trials(deepcopy=False)
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]  # draws refused as repeats trained nothing
    diverged = [t for t in trained if t.params.get("lr") == 1e6]
    assert len(diverged) <= 1  # a configuration that diverged is tried once, never drawn again
    for t in diverged:
        assert t.state.name == "FAIL" and "loss became nan" in t.user_attrs["error"] and t.user_attrs["diverged"]
    assert any(t.state.name == "COMPLETE" for t in trials)


# ---- result.csv and the board ------------------------------------------------------------------------

@pytest.mark.slow
def test_result_csv_only_holds_test_submissions_and_trials_are_named(demo):
    assert run(demo, "train", "--recipe", "tiny", "--name", "a", *FAST).exit_code == 0
    r = run(demo, "submit", "--run", "a", "--name", "on-test")
    assert r.exit_code == 0, r.output
    result = (demo / "result.csv").read_bytes()
    assert result == (demo / "submissions" / "on-test.csv").read_bytes()
    r = run(demo, "submit", "--run", "a", "--data", "dev", "--name", "on-dev")
    assert r.exit_code == 0, r.output
    assert "result.csv unchanged" in r.output
    assert (demo / "result.csv").read_bytes() == result
    assert (demo / "submissions" / "on-dev.dev.csv").exists() and not (demo / "submissions" / "on-dev.csv").exists()
    board = run(demo, "leaderboard").output
    assert "dev-submission" in board and "on-dev" in board
    # a study's trials are members by name, and the board shows that name
    r = run(demo, "search", "--recipe", "tiny", "--study", "st", "--trials", "2", "--quiet", *FAST)
    assert r.exit_code == 0, r.output
    r = run(demo, "submit", "--runs", "st/t0,st/t1", "--fit-weights", "--name", "mix")
    assert r.exit_code == 0, r.output
    assert "st/t0" in run(demo, "leaderboard").output
    assert json.loads((demo / "submissions" / "mix.json").read_text())["members"] == ["st/t0", "st/t1"]
    one_line(run(demo, "submit", "--run", "st/t9"), "no finished trial")


def test_a_staged_result_is_finished_only_when_the_board_recorded_it(demo):
    from harness.board.store import Leaderboard
    from harness.common.workspace import Workspace
    from harness.pipeline import PENDING_RESULT, finish_result

    ws = Workspace(demo)
    (demo / "result.csv").write_text("ID,Answer\n1,old\n")
    pending = demo / PENDING_RESULT
    pending.write_text("ID,Answer\n1,new\n")  # a kill after staging, before the board's transaction
    finish_result(ws)
    assert not pending.exists() and (demo / "result.csv").read_text() == "ID,Answer\n1,old\n"
    import hashlib

    pending.write_text("ID,Answer\n1,new\n")  # a kill after the board's transaction, before the rename
    Leaderboard.for_workspace(ws).set_result({"name": "x", "sha256": hashlib.sha256(pending.read_bytes()).hexdigest()})
    finish_result(ws)
    assert not pending.exists() and (demo / "result.csv").read_text() == "ID,Answer\n1,new\n"


# ---- scoring the wrong file ----------------------------------------------------------------------------

def test_scoring_test_predictions_against_dev_gold_is_refused(tmp_path):
    dev = json.loads(Path(shared_file("hw7/hw7_dev.json")).read_text(encoding="utf-8"))
    test = json.loads(Path(shared_file("hw7/hw7_test.json")).read_text(encoding="utf-8"))
    rows = ["ID,Answer"]
    for q in test["questions"][:200]:  # answers cut from the *test* paragraphs: ids 0.. match dev's
        rows.append(f"{q['id']},{test['paragraphs'][q['paragraph_id']][:6]}")
    (tmp_path / "pred.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    one_line(run(tmp_path, "score", str(tmp_path / "pred.csv"), "--gold", str(shared_file("hw7/hw7_dev.json"))),
             "do not occur in their gold contexts", "another split")
    rows = ["ID,Answer"] + [f"{q['id']},{q['answer_text']}" for q in dev["questions"][:200]]
    (tmp_path / "right.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    r = run(tmp_path, "score", str(tmp_path / "right.csv"), "--gold", str(shared_file("hw7/hw7_dev.json")))
    assert r.exit_code == 0 and "EM" in r.output, r.output


# ---- the disk ----------------------------------------------------------------------------------------

def _unshare_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(not _unshare_works(), reason="needs root and `unshare -m` to mount a read-only "
                                                                "or tiny file system")


def _in_mount(ws: Path, mount: str, *args) -> subprocess.CompletedProcess:
    """Run ``harness ARGS`` with ``ws`` re-mounted (``ro`` bind, or a tiny ``tmpfs`` copy)."""
    quoted = " ".join(f"'{a}'" for a in harness_cmd(ws, *args))
    if mount == "ro":
        script = f"mount --bind -o ro '{ws}' '{ws}' && {quoted}"
    else:
        script = (f"tmp=$(mktemp -d) && cp -a '{ws}/.' \"$tmp\" && mount -t tmpfs -o size={mount} tmpfs '{ws}' && "
                  f"cp -a \"$tmp/.\" '{ws}' 2>/dev/null; dd if=/dev/zero of='{ws}/fill' bs=64k 2>/dev/null; {quoted}")
    return subprocess.run(["unshare", "-m", "sh", "-c", script], env=sub_env(), capture_output=True, text=True,
                          timeout=600)


@needs_mounts
@pytest.mark.slow
def test_a_read_only_workspace_is_one_line_per_command_and_the_board_still_reads(demo):
    assert run(demo, "train", "--recipe", "tiny", "--name", "a", *FAST).exit_code == 0
    assert run(demo, "submit", "--run", "a").exit_code == 0
    for args, needle in [(["train", "--recipe", "tiny", "--name", "b", *FAST], "read-only"),
                         (["submit", "--run", "a", "--name", "again"], "read-only"),
                         (["predict", "--run", "a", "--data", "dev"], "read-only"),
                         (["search", "--recipe", "tiny", "--trials", "1", *FAST], "read-only"),
                         (["init", "x", "--train", str(demo / "data" / "train.json")], "read-only")]:
        one_line(_in_mount(demo, "ro", *args), needle)
    r = _in_mount(demo, "ro", "leaderboard")
    assert r.returncode == 0 and "a" in r.stdout, r.stdout + r.stderr


@needs_mounts
@pytest.mark.slow
def test_a_full_disk_is_one_line(demo):
    one_line(_in_mount(demo, "4m", "train", "--recipe", "tiny", "--name", "b", *FAST), "disk is full")


# ---- newcomer path -------------------------------------------------------------------------------------

def test_split_keeps_paragraphs_whole_and_the_halves_init(tmp_path):
    src = tmp_path / "hw7_dev.json"
    shutil.copyfile(shared_file("hw7/hw7_dev.json"), src)
    r = run(tmp_path, "split", str(src), "--dev", "0.2")
    assert r.exit_code == 0, r.output
    train = json.loads((tmp_path / "hw7_dev.train.json").read_text(encoding="utf-8"))
    dev = json.loads((tmp_path / "hw7_dev.dev.json").read_text(encoding="utf-8"))
    original = json.loads(src.read_text(encoding="utf-8"))
    assert len(train["questions"]) + len(dev["questions"]) == len(original["questions"])
    assert not {q["paragraph_id"] for q in train["questions"]} & {q["paragraph_id"] for q in dev["questions"]}
    assert 0.15 < len(dev["questions"]) / len(original["questions"]) < 0.25
    r = run(tmp_path, "init", "hw7", "--train", str(tmp_path / "hw7_dev.train.json"),
            "--dev", str(tmp_path / "hw7_dev.dev.json"))
    assert r.exit_code == 0 and "language: zh" in r.output, r.output
    one_line(run(tmp_path, "split", str(shared_file("hw7/hw7_test.json"))), "has no answers")


def test_markdown_export_escapes_html_from_names(tmp_path):
    from harness.board.store import Leaderboard

    board = Leaderboard(tmp_path / "leaderboard")
    board.add_entry("x<script>alert(1)</script>", dev_per_id={"q1": (1.0, 1.0), "q2": (0.0, 0.5)},
                    members=["<b>run</b>"])
    r = run(tmp_path, "leaderboard", "export", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md and "<b>" not in md
    page = (tmp_path / "out" / "leaderboard.html").read_text()
    assert "<script>alert" not in page
