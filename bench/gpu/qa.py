"""GPU suite, QA part: a minilm search on SQuAD, a refit and fitted ensembles, through the harness CLI.

    python bench/gpu/qa.py --out work/bench-gpu --budget 200      # GPU size: 12 trials under a time budget
    python bench/gpu/qa.py --smoke --out /tmp/qa                   # CPU plumbing check: 2 trials, 1 step each

Data: ``squad/squad_v1.1_dev_even_articles.json`` from ``HARNESS_SHARED_DATA`` (../shared/data),
split by article exactly as ``bench/accuracy.py`` splits it (its ``qa_splits``: articles ordered by
a seeded hash of their title; GPU size: 3 test articles, 2 dev articles capped at 400 questions,
train the other 19 capped at 2,000 questions: sized, not yet measured, for 12 trials in about
two minutes on an H100/H200; windows 384/128). Steps, each the shipped command
in a scratch workspace (``--work``, recreated):

1. ``harness init squad-gpu --train --dev --test --test-gold`` (the test answers give test scores);
2. ``harness search --recipe minilm --dev --trials N --timeout T`` (T: what the budget leaves after
   the refit and submit reserve; the timeout stops new trials, the running one finishes);
3. ``harness trials --sort``; ``harness refit --trial best --seeds 1``;
4. ``harness submit``: the best trial alone, the refit run alone, ``--fit-weights`` over the kept
   top trials (``ensemble-search``) and over those plus the refit run (``ensemble-all``); ``--smoke``
   submits only the best trial and ``ensemble-all``.

Writes ``qa.json`` (every figure and the trials table) under ``--out`` and prints ``qa_*`` lines,
``qa_search: N trials (C complete, P pruned) in S s; best dev em X (trial T); ...`` and
``qa_submit[ensemble-all]: test EM X / F1 Y (dev EM X / F1 Y), 4 member(s), weights [...]``.
A failed step is recorded and the later steps that do not depend on it still run; exit 1 then.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import qa_splits, squad_json

SHARED = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
SQUAD = SHARED / "squad" / "squad_v1.1_dev_even_articles.json"
RECIPE, STUDY = "minilm", "minilm-dev"

SIZES = {
    "gpu": dict(test_articles=3, dev_articles=2, n_train=2000, n_dev=400, n_test=None, max_length=384,
                doc_stride=128, trials=12, max_steps=0, members=3, refit_seeds="1", reserve_s=80,
                submits=("best-trial", "refit", "ensemble-search", "ensemble-all")),
    "smoke": dict(test_articles=1, dev_articles=1, n_train=24, n_dev=8, n_test=16, max_length=128,
                  doc_stride=48, trials=2, max_steps=1, members=2, refit_seeds="1", reserve_s=0,
                  submits=("best-trial", "ensemble-all")),  # one single model, one ensemble of both kinds
}


class StepFailed(Exception):
    pass


class Interrupted(Exception):
    pass


class Driver:
    def __init__(self, p: dict, work: Path, log):
        self.p, self.ws, self.log = p, work / "ws", log
        self.figures: dict = {"steps": {}}

    def cli(self, step: str, *args) -> str:
        cmd = [sys.executable, "-m", "harness", "-w", str(self.ws), "-c", str(self.ws), *map(str, args)]
        shown = "harness " + " ".join(map(str, args))
        print(f"$ {shown}", flush=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=self.ws, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            print(f"    | {line.rstrip()}", flush=True)
        rc = proc.wait()
        took = round(time.time() - t0, 1)
        self.figures["steps"].setdefault(step, []).append({"command": shown, "rc": rc, "s": took})
        if rc:
            raise StepFailed(f"`{shown}` failed (exit {rc}): {''.join(lines[-3:]).strip()}")
        return "".join(lines)

    def sets(self) -> list[str]:
        s = [f"max_length={self.p['max_length']}", f"doc_stride={self.p['doc_stride']}"]
        if self.p["max_steps"]:
            s.append(f"max_steps={self.p['max_steps']}")
        return [x for v in s for x in ("--set", v)]

    def prepare(self) -> dict:
        if self.ws.exists():
            shutil.rmtree(self.ws)
        data = self.ws / "data"
        data.mkdir(parents=True)
        sp = qa_splits(SQUAD, self.p)
        files = {}
        for split in ("train", "dev", "test"):
            files[split] = data / f"{split}.json"
            files[split].write_text(squad_json(sp["source"], sp[split], with_answers=split != "test"),
                                    encoding="utf-8")
        files["test_gold"] = data / "test_gold.json"
        files["test_gold"].write_text(squad_json(sp["source"], sp["test"]), encoding="utf-8")
        sizes = {k: len(sp[k]) for k in ("train", "dev", "test")}
        self.figures["split"] = {"questions": sizes, "articles": {k: len(v) for k, v in sp["articles"].items()}}
        print(f"qa_data: SQuAD v1.1 dev even articles: train {sizes['train']}, dev {sizes['dev']}, test "
              f"{sizes['test']} questions (by article), windows {self.p['max_length']}/{self.p['doc_stride']}",
              flush=True)
        return files

    def trials(self) -> list[dict]:
        table = self.cli("trials", "trials", "--study", STUDY, "--sort")
        self.figures["trials_table"] = table
        lines = table.splitlines()
        header = next((ln.split() for ln in lines if ln.split()[:1] == ["number"] and "state" in ln.split()), None)
        if header is None:
            return []
        i_state = header.index("state")
        rows, states = [], {}
        for line in lines:
            tok = line.split()
            if len(tok) > i_state + 1 and tok[0].isdigit():
                state = tok[i_state]
                states[state] = states.get(state, 0) + 1
                if state == "COMPLETE":
                    m = re.search(r"(studies/\S+/trials/(\d+))", line)
                    try:
                        score = float(tok[i_state + 1])
                    except ValueError:
                        score = None
                    self.figures["metric"] = header[i_state + 1]
                    rows.append({"number": int(tok[0]), header[i_state + 1]: score, "dev": score,
                                 "dir": m.group(1) if m else None,
                                 "has_model": bool(m) and (self.ws / m.group(1) / "model").exists()})
        self.figures["trial_states"] = states
        return rows

    def submit(self, name: str, runs: list[str], fit: bool) -> dict:
        args = ["submit", "--name", name, ("--runs" if len(runs) > 1 else "--run"), ",".join(runs)]
        self.cli(f"submit-{name}", *args, *(["--fit-weights"] if fit else []))
        side = json.loads((self.ws / "submissions" / f"{name}.json").read_text(encoding="utf-8"))
        val, test = side.get("validation") or {}, side.get("test") or {}
        out = {"members": side.get("members"), "weights": side.get("weights"),
               "dev": {k: val.get(k) for k in ("em", "f1")}, "test": {k: test.get(k) for k in ("em", "f1")}}
        w = out["weights"]
        wtxt = f", weights {[round(x, 3) for x in w]}" if fit and w else ""
        fmt = lambda d: " / ".join(f"{k.upper()} {d[k]:.2f}" if d.get(k) is not None else f"{k.upper()} -"
                                   for k in ("em", "f1"))
        print(f"qa_submit[{name}]: test {fmt(out['test'])} (dev {fmt(out['dev'])}), {len(runs)} member(s){wtxt}",
              flush=True)
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CPU plumbing size: tiny splits, 128 tokens, 1 step")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "work" / "bench-gpu")))
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: OUT/../bench-gpu-qa)")
    ap.add_argument("--trials", type=int, default=None, help="search trials (default 12; smoke 2)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for this whole script: the search's --timeout is what is left after the "
                         "refit + submit reserve (default: no timeout)")
    args = ap.parse_args(argv)
    t_start = time.time()
    p = dict(SIZES["smoke" if args.smoke else "gpu"])
    if args.trials:
        p["trials"] = args.trials
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = (args.work or out.parent / f"{out.name}-qa").resolve()
    if not SQUAD.exists():
        print(f"qa: {SQUAD} missing (set HARNESS_SHARED_DATA)", flush=True)
        return 1
    d = Driver(p, work, print)
    d.figures.update({"size": "smoke" if args.smoke else "gpu", "params": p, "recipe": RECIPE})
    failures: list[str] = []

    def on_term(signum, frame):  # `timeout` stops the step: keep the figures gathered so far
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    rc = 1
    try:
        rc = suite(d, p, args.budget, t_start, failures)
    except Interrupted as e:
        failures.append(f"stopped by {e} (the step's time limit)")
        print(f"qa: stopped by {e}; figures so far in {out / 'qa.json'}", flush=True)
    finally:
        d.figures["failures"] = failures
        d.figures["total_s"] = round(time.time() - t_start, 1)
        (out / "qa.json").write_text(json.dumps(d.figures, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"qa_total: {d.figures['total_s']:.0f} s, {len(failures)} failed step(s); figures in {out / 'qa.json'}",
          flush=True)
    return rc


def suite(d: Driver, p: dict, budget: float | None, t_start: float, failures: list[str]) -> int:
    def run(step, fn):
        try:
            return fn()
        except StepFailed as e:
            failures.append(str(e))
            print(f"qa: {step} FAILED: {e}", flush=True)
            return None

    try:
        files = d.prepare()
        d.cli("init", "init", "squad-gpu", "--train", files["train"], "--dev", files["dev"], "--test", files["test"],
              "--test-gold", files["test_gold"], "--layout", "squad", "--lang", "en")
    except StepFailed as e:
        print(f"qa: FAILED: {e}", flush=True)
        failures.append(str(e))
        return 1

    search = ["search", "--recipe", RECIPE, "--study", STUDY, "--dev", "--trials", p["trials"], "--quiet",
              "--keep", p["members"], *d.sets()]
    if budget:
        left = budget - (time.time() - t_start) - p["reserve_s"]
        search += ["--timeout", f"{max(left, 10):.0f}"]
        d.figures["search_timeout_s"] = round(max(left, 10))
    t0 = time.time()
    run("search", lambda: d.cli("search", *search))
    d.figures["search_s"] = round(time.time() - t0, 1)
    ranked = run("trials", d.trials) or []
    states = d.figures.get("trial_states", {})
    if ranked:
        best = ranked[0]
        d.figures["best_trial"] = best
        print(f"qa_search: {sum(states.values())} trials ({', '.join(f'{v} {k.lower()}' for k, v in states.items())}) "
              f"in {d.figures['search_s']:.0f} s; best dev {d.figures.get('metric', 'score')} {best['dev']} "
              f"(trial {best['number']}); trials table in qa.json", flush=True)
    else:
        print(f"qa_search: no complete trial ({states or 'none'}) in {d.figures['search_s']:.0f} s", flush=True)

    refit_runs = []
    if ranked:
        text = run("refit", lambda: d.cli("refit", "refit", "--study", STUDY, "--trial", "best", "--seeds",
                                          p["refit_seeds"], "--quiet"))
        m = re.search(r"^runs: (.+)$", text or "", re.MULTILINE)
        refit_runs = [r.strip() for r in m.group(1).split(",")] if m else []
    d.figures["refit_runs"] = refit_runs
    subs = {}
    members = [f"{STUDY}/t{r['number']}" for r in ranked if r["has_model"]][: p["members"]]
    want = set(p["submits"])
    if ranked and "best-trial" in want:
        subs["best-trial"] = run("submit", lambda: d.submit("best-trial", [f"{STUDY}/t{ranked[0]['number']}"], False))
    if refit_runs and "refit" in want:
        subs["refit"] = run("submit", lambda: d.submit("refit", refit_runs[:1], False))
    if len(members) > 1 and "ensemble-search" in want:
        subs["ensemble-search"] = run("submit", lambda: d.submit("ensemble-search", members, True))
    if members and refit_runs and "ensemble-all" in want:
        subs["ensemble-all"] = run("submit", lambda: d.submit("ensemble-all", members + refit_runs, True))
    d.figures["submissions"] = subs
    return 1 if failures or not ranked else 0

if __name__ == "__main__":
    sys.exit(main())
