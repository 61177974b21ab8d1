"""Every speed benchmark at CPU size in one run (``make bench``), then a summary of their ratio lines.

    python bench/run_all.py               # decode, ensemble, windows, train_speed, search_prep (~10 min on 2 idle cores, ~10 on busy ones)
    python bench/run_all.py --quick       # each bench's --quick size (~1 min)
    python bench/run_all.py --only decode,windows --json work/bench.json
    python bench/run_all.py --list        # the commands, without running them
    HF_UTILS_QA=~/transformers/examples/pytorch/question-answering/utils_qa.py make bench  # + HF's own file

Each bench runs as a subprocess with its output streamed as it comes; the ratio lines (``decode[..]``,
``nbest[..]``, ``ensemble:``, ``fit_weights:``, ``windows:``, ``cache:``, ``train_speed:``,
``predict_speed:`` and any other line that names a ratio or speed-up) are collected and printed
at the end under the command that produced them. A bench that fails or runs past ``--timeout``
is reported as such and the others still run; the exit status is 1 when any failed.

Sizes (CPU, 2 cores): ``decode.py`` all DRCD dev and SQuAD questions (~1 min); ``ensemble.py`` all
DRCD dev questions; ``windows.py --rounds 2`` (all questions of the three cases, best of two
interleaved rounds); ``train_speed.py --device cpu --shape minilm --steps 5 --warmup-steps 1 --windows
160 --predict-repeats 1``, or ``--quick`` (tiny shape) when the script has no minilm shape.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: lines worth keeping in the summary
RATIO_LINE = re.compile(r"^(decode\[|nbest\[|ensemble:|fit_weights:|windows:|reference:|cache:|train_speed:|"
                        r"predict_speed:|loss_fixed:|search_prep:)|\b(ratio|speed-up)\b")


def train_speed_args(quick: bool) -> list[str]:
    """CPU size of bench/train_speed.py: the pretrained minilm shape, 5 steps (clock after 1) on 160
    windows, one timed prediction pass (~2-3 min on 2 cores); ``--quick``: its tiny shape."""
    if quick:
        return ["--quick"]
    return ["--device", "cpu", "--shape", "minilm", "--steps", "5", "--warmup-steps", "1", "--windows", "160",
            "--predict-repeats", "1"]


def hf_utils_qa() -> list[str]:
    """``--hf-utils-qa PATH`` for the decode bench when ``HF_UTILS_QA`` names HF's own utils_qa.py
    (examples/pytorch/question-answering/ of a transformers checkout): it is then timed as well."""
    path = os.environ.get("HF_UTILS_QA")
    return ["--hf-utils-qa", path] if path else []


def benches(quick: bool) -> list[tuple[str, list[str]]]:
    q = ["--quick"] if quick else []
    py = [sys.executable]
    return [
        ("decode", py + ["bench/decode.py", *q, *hf_utils_qa()]),
        ("ensemble", py + ["bench/ensemble.py", *q]),
        ("windows", py + ["bench/windows.py", *(q or ["--rounds", "2"])]),
        ("train_speed", py + ["bench/train_speed.py", *train_speed_args(quick)]),
        ("search_prep", py + ["bench/search_prep.py", *(["--recipe", "tiny", "--quick"] if quick else [])]),
    ]


def shown(cmd: list[str]) -> str:
    return " ".join(["python" if c == sys.executable else c for c in cmd])


def run_one(name: str, cmd: list[str], timeout: float, echo=print) -> dict:
    """Run ``cmd`` from the repository root, streaming its output; its ratio lines and status."""
    echo(f"==== [{name}] {shown(cmd)}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    lines, ratios = [], []
    try:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
    except OSError as e:
        return {"name": name, "command": shown(cmd), "status": "FAILED", "rc": None, "s": 0.0, "ratios": [],
                "tail": [str(e)]}
    timed_out = []

    def kill():  # the whole process group: a bench's own workers too
        timed_out.append(True)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            echo(line, flush=True)
            if RATIO_LINE.search(line) and not line.startswith("#"):
                ratios.append(line)
        rc = proc.wait()
    finally:
        timer.cancel()
    status = "TIMEOUT" if timed_out else ("ok" if rc == 0 else "FAILED")
    took = time.time() - t0
    echo(f"==== [{name}] {status}{'' if rc in (0, None) else f' (exit {rc})'} in {took:.0f} s", flush=True)
    return {"name": name, "command": shown(cmd), "status": status, "rc": rc, "s": round(took, 1), "ratios": ratios,
            "tail": lines[-5:]}


def summary(results: list[dict], total_s: float) -> str:
    bad = [r for r in results if r["status"] != "ok"]
    out = [f"================ bench summary: {len(results)} benches, {len(results) - len(bad)} ok, {len(bad)} failed, "
           f"{total_s:.0f} s ================"]
    for r in results:
        out.append(f"$ {r['command']}   [{r['status']}, {r['s']:.0f} s]")
        out += [f"  {line}" for line in r["ratios"]]
        if not r["ratios"]:
            out.append("  (no ratio line)")
        if r["status"] != "ok":
            out += [f"  | {line}" for line in r["tail"]]
    return "\n".join(out)


def run(selected: list[tuple[str, list[str]]], timeout: float, echo=print) -> tuple[int, list[dict], str]:
    t0 = time.time()
    results = [run_one(name, cmd, timeout, echo) for name, cmd in selected]
    text = summary(results, time.time() - t0)
    return (1 if any(r["status"] != "ok" for r in results) else 0), results, text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="each bench at its --quick size")
    p.add_argument("--only", default=None, help="comma-separated bench names (decode, ensemble, windows, train_speed, search_prep)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per bench before it is killed (default 600)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--list", action="store_true", help="print the commands and exit")
    args = p.parse_args(argv)
    selected = benches(args.quick)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - {n for n, _ in selected})
        if unknown:
            p.error(f"unknown bench(es): {', '.join(unknown)}")
        selected = [b for b in selected if b[0] in names]
    if args.list:
        for name, cmd in selected:
            print(f"{name}: {shown(cmd)}")
        return 0
    rc, results, text = run(selected, args.timeout)
    print()
    print(text, flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=2) + "\n", encoding="utf-8")
    return rc


if __name__ == "__main__":
    sys.exit(main())
