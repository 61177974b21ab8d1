"""bench/accuracy.py: the split rules, the Trainer's features against run_qa.py's, and the smoke scale end to
end on the real data (both tracks): every row has a test score and a 95% interval, the targets are judged,
our intervals equal the leaderboard's, and a rerun resumes without training anything."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

ROWS = {"qa": ["trainer-default", "trainer-grid", "harness-default", "search-best", "refit", "ensemble-search",
               "ensemble-refit"]}
# the smoke clf track also trains Trainer and harness at one more seed: the parity rows' means
ROWS["clf"] = ROWS["qa"][:3] + ["trainer-default-seeds", "harness-default-seeds"] + ROWS["qa"][3:]


def _accuracy():
    import accuracy

    return accuracy


@pytest.mark.shared
def test_qa_split_keeps_articles_whole_and_is_deterministic():
    acc = _accuracy()
    shared_file("squad/squad_v1.1_dev_even_articles.json")
    p = acc.SCALES["qa"]["cpu"]
    a, b = acc.qa_splits(acc.SQUAD, p), acc.qa_splits(acc.SQUAD, p)
    titles = {s: set(a["articles"][s]) for s in ("train", "dev", "test")}
    assert not (titles["train"] & titles["dev"]) and not (titles["train"] & titles["test"])
    assert not (titles["dev"] & titles["test"])
    assert len(titles["test"]) == p["test_articles"] and len(titles["dev"]) == p["dev_articles"]
    for s in ("train", "dev", "test"):
        used = {a["source"][i].get("title") for i, _, _ in a[s]}
        assert used <= titles[s]
        assert [q["id"] for _, _, q in a[s]] == [q["id"] for _, _, q in b[s]]
        cap = p[f"n_{s}"]
        assert cap is None or len(a[s]) <= cap
    assert len(a["train"]) == p["n_train"]
    test_json = json.loads(acc.squad_json(a["source"], a["test"], with_answers=False))
    assert all("answers" not in q for art in test_json["data"] for para in art["paragraphs"] for q in para["qas"])


@pytest.mark.shared
def test_sst2_split_rules():
    acc = _accuracy()
    shared_file("glue/SST-2/train.tsv")
    shared_file("glue/SST-2/dev.tsv")
    p = acc.SCALES["clf"]["cpu"]
    sp = acc.sst2_splits(acc.SST2_TRAIN, acc.SST2_DEV, p)
    assert len(sp["test"]) == 872 and len(sp["dev"]) == p["n_dev"] and len(sp["train"]) == p["n_train"]
    text = {s: {" ".join(t.split()) for _, t, _ in sp[s]} for s in sp}
    assert not (text["train"] & text["dev"]) and not (text["train"] & text["test"]) and not (text["dev"] & text["test"])
    assert all(len(t.split()) >= acc.SST2_DEV_MIN_WORDS for _, t, _ in sp["dev"])
    spans = set()
    for _, t, _ in sp["dev"]:
        w = t.split()
        spans.update(" ".join(w[i:j]) for i in range(len(w)) for j in range(i + 1, len(w) + 1))
    assert not (text["train"] & spans)
    ids = [r for s in sp for r, _, _ in sp[s]]
    assert len(ids) == len(set(ids))


@pytest.mark.shared
def test_trainer_features_are_run_qa_features():
    """The Trainer trains on harness windows; run_qa.py's own tokenisation gives the same windows and
    labels, except its edge case (an answer ending the window's context: its start label runs past it)."""
    acc = _accuracy()
    import peers

    shared_file("squad/squad_v1.1_dev_even_articles.json")
    sp = acc.qa_splits(acc.SQUAD, dict(acc.SCALES["qa"]["cpu"], n_train=300))
    ex = [peers.QAItem(q["id"], q["question"], sp["source"][a]["paragraphs"][pi]["context"],
                       [x["text"] for x in q["answers"]], [x["answer_start"] for x in q["answers"]])
          for a, pi, q in sp["train"]]
    tok = peers.load_tokenizer(peers.minilm_path())
    windows, features = peers.qa_features(tok, ex, 192, 64)
    ref = peers.run_qa_train_features(tok, ex, 192, 64)
    assert len(features) == len(windows) == len(ref["input_ids"])
    assert np.array_equal(np.asarray(ref["input_ids"]), windows.input_ids)
    assert np.array_equal(np.asarray(ref["token_type_ids"]), windows.token_type_ids)
    assert np.array_equal(np.asarray(ref["attention_mask"]), windows.attention_mask)
    assert np.array_equal(np.asarray(ref["example_index"]), windows.example_index)
    start, end = np.asarray(ref["start_positions"]), np.asarray(ref["end_positions"])
    differ = (start != windows.start_positions) | (end != windows.end_positions)
    assert (start[differ] > end[differ]).all()  # only run_qa's past-the-end start labels
    assert differ.mean() < 0.01
    assert features[0]["input_ids"] == windows.input_ids[0].tolist()


def _check_track(result: dict, track: str) -> None:
    metrics = ("em", "f1") if track == "qa" else ("accuracy", "mcc")
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == ROWS[track]
    for name, r in rows.items():
        for m in metrics:
            v, (lo, hi) = r["test"][m], r["ci"][m]
            assert all(isinstance(x, float) and math.isfinite(x) for x in (v, lo, hi)), (name, m, v, lo, hi)
            assert lo - 1e-9 <= v <= hi + 1e-9, (name, m, v, lo, hi)
        assert r["wall_s"] is not None and r["wall_s"] >= 0
        if name == "trainer-default":
            assert r["diff_vs_trainer_default"] is None
        else:
            d, lo, hi = r["diff_vs_trainer_default"]
            assert lo - 1e-9 <= d <= hi + 1e-9
    assert result["bootstrap"]["resamples"] == 1000
    assert len(result["grid"]) == 2
    names = [t["target"] for t in result["targets"]]
    assert len(names) == 4 and names[0].startswith("harness at Trainer's") and names[1].startswith("search best")
    parity = result["targets"][0]
    if track == "clf":  # the parity target compares the means over the seeds
        assert (parity["a"], parity["b"]) == ("harness-default-seeds", "trainer-default-seeds")
        assert names[0].endswith("(means over the same seeds)")
        for name in ("trainer-default-seeds", "harness-default-seeds"):
            per_seed = rows[name]["per_seed"]
            assert list(per_seed) == ["42", "1"]
            mean = sum(v["accuracy"] for v in per_seed.values()) / 2
            assert abs(rows[name]["test"]["accuracy"] - mean) < 1e-9  # the pooled rows average the seeds
        assert rows["trainer-default-seeds"]["per_seed"]["42"] == rows["trainer-default"]["test"]
    else:
        assert (parity["a"], parity["b"]) == ("harness-default", "trainer-default")
    assert all(isinstance(t["pass"], bool) and t["ci"][0] <= t["diff"] + 1e-9 <= t["ci"][1] + 2e-9
               for t in result["targets"])
    assert result["board_check"]["checked"] >= 5 and result["board_check"]["mismatched"] == []
    assert result["search"]["counts"].get("COMPLETE", 0) >= 1


@pytest.mark.slow
@pytest.mark.shared
def test_smoke_scale_end_to_end(tmp_path):
    shared_file("squad/squad_v1.1_dev_even_articles.json")
    shared_file("glue/SST-2/train.tsv")
    shared_file("glue/SST-2/dev.tsv")

    # the two tracks side by side, one core each (two 2-thread torch processes on 2 cores spin
    # against each other)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

    def start(track):
        return subprocess.Popen([sys.executable, str(ROOT / "bench" / "accuracy.py"), "--track", track, "--scale",
                                 "smoke", "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=ROOT, env=env)

    procs = {t: start(t) for t in ("clf", "qa")}
    outs = {t: p.communicate(timeout=1200)[0] for t, p in procs.items()}
    for t, p in procs.items():
        assert p.returncode == 0, outs[t][-4000:]
    for t in ("clf", "qa"):
        folder = tmp_path / "smoke" / t
        result = json.loads((folder / "results.json").read_text())
        _check_track(result, t)
        md = (folder / "results.md").read_text()
        table = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| row")
                 and not ln.startswith("| target")]
        assert len(table) == len(ROWS[t]) + 4  # the rows, then the targets
        assert all(ln.count("|") == 9 for ln in table[:len(ROWS[t])])
        assert all(ln.rstrip().endswith(("pass |", "FAIL |")) for ln in table[len(ROWS[t]):])

    # a rerun trains nothing: every row comes from the state
    first = json.loads((tmp_path / "smoke" / "clf" / "results.json").read_text())
    rerun = subprocess.run([sys.executable, str(ROOT / "bench" / "accuracy.py"), "--track", "clf", "--scale", "smoke",
                            "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert ": started" not in rerun.stdout
    again = json.loads((tmp_path / "smoke" / "clf" / "results.json").read_text())
    assert [r["test"] for r in again["rows"]] == [r["test"] for r in first["rows"]]


def test_a_pause_file_holds_the_next_row_untimed(tmp_path):
    # touch OUT/PAUSE: the bench waits before its next row, and the wait is in no row's time
    import threading
    import time

    acc = _accuracy()
    track = acc.Track("clf", "smoke", tmp_path, echo=lambda msg: None)
    (tmp_path / "PAUSE").touch()
    box = {}
    worker = threading.Thread(target=lambda: box.update(r=track.step("row", lambda: {"x": 1})))
    worker.start()
    time.sleep(1.0)
    assert "r" not in box and worker.is_alive()  # held
    (tmp_path / "PAUSE").unlink()
    worker.join(timeout=30)
    assert box["r"]["x"] == 1 and box["r"]["wall_s"] < 1.0
    assert json.loads(track.state_path.read_text())["steps"]["row"]["x"] == 1


def test_ranked_trials_rank_complete_trials_by_dev_whatever_the_table_order(tmp_path):
    acc = _accuracy()
    track = acc.Track("clf", "smoke", tmp_path, echo=lambda msg: None)
    table = """study 'minilm-dev'
 number           name    state  accuracy       lr  seconds model                           path            note
      6                  PRUNED     75.50 0.000097     26.6
      0  minilm-dev/t0 COMPLETE     83.25 0.000200    108.4       studies/minilm-dev/trials/0000 recipe defaults
      1  minilm-dev/t1 COMPLETE     82.25 0.000105     66.2       studies/minilm-dev/trials/0001
      4  minilm-dev/t4 COMPLETE     85.25 0.000187     79.0   yes studies/minilm-dev/trials/0004
      5  minilm-dev/t5 COMPLETE     85.25 0.000127    151.7       studies/minilm-dev/trials/0005
"""
    ranked = track._ranked_trials(table)
    assert [r["number"] for r in ranked] == [4, 5, 0, 1]
    assert ranked[0]["dev"] == 85.25 and ranked[0]["dir"] == "studies/minilm-dev/trials/0004"


def test_redo_search_forgets_the_search_and_later_rows_and_sets_their_files_aside(tmp_path):
    # after a change of the recipe: the Trainer and harness-default rows stay, the search starts over
    # (a fresh study, its search log moved, so its whole budget is left) and stale members leave the board
    from harness.board.store import Leaderboard

    acc = _accuracy()
    track = acc.Track("qa", "smoke", tmp_path, echo=lambda msg: None)
    keep = ["init", "trainer:lr=3e-5,epochs=2", "harness-default"]
    gone = ["search", "search-best", "refit", "member:studies/minilm-dev/trials/0001",
            "member:runs/minilm-dev-t0-s1", "ensemble-search", "ensemble-refit"]
    track.state = {"steps": {n: {"wall_s": 1.0} for n in keep + gone}}
    track.state["steps"]["refit"]["runs"] = ["runs/minilm-dev-t0-s1"]
    ws = track.ws
    for d in ("studies/minilm-dev/trials/0001", "runs/minilm-dev-t0-s1", "runs/harness-default", "submissions"):
        (ws / d).mkdir(parents=True)
    subs = ["search-best", "member-trial-0001", "member-minilm-dev-t0-s1", "ensemble-search", "ensemble-refit"]
    for n in subs + ["harness-default"]:
        (ws / "submissions" / f"{n}.csv").write_text("id,answer\n")
    track.logs.mkdir(parents=True)
    (track.logs / "search.log").write_text("trial   0 COMPLETE em 1.00  best 1.00 (#0)      99s  lr=1\n")
    board = Leaderboard(ws / "leaderboard" / "board.sqlite")
    board.path.parent.mkdir(parents=True)
    for n in subs + ["harness-default"]:
        board.add_entry(n, dev_per_id={"q1": (1.0, 1.0)})

    assert track.redo_search() == gone
    assert list(json.loads(track.state_path.read_text())["steps"]) == keep
    assert not (ws / "studies" / "minilm-dev").exists() and not (ws / "runs" / "minilm-dev-t0-s1").exists()
    assert (ws / "runs" / "harness-default").exists() and (ws / "submissions" / "harness-default.csv").exists()
    assert sorted(p.name for p in (ws / "submissions").iterdir()) == ["harness-default.csv"]
    assert track._trial_seconds() == {}  # the new search gets its whole budget
    (aside,) = (track.dir / "redone").iterdir()
    assert (aside / "ws" / "studies" / "minilm-dev" / "trials" / "0001").is_dir()
    assert (aside / "logs" / "search.log").exists()
    assert board.names() == ["harness-default"]
    assert track.redo_search() == []  # nothing left to forget
