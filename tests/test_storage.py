"""Shared studies: PostgreSQL as the multi-host study engine, workers that never repeat a
configuration, one study created once, one-line database outages, passwords never shown or saved.

The PostgreSQL tests start a throwaway server (initdb into a temporary folder, as the ``postgres``
user when running as root, on a free TCP port; stopped at teardown) and are skipped, saying why,
where that cannot be done. ``.ci/run`` installs the Debian package ``postgresql`` when it is missing.
Every search uses the offline ``tiny`` recipe on a 60/20/10-question demo competition with
``max_steps`` of a few steps: a trial takes about a second, a ``python -m harness`` start a few.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.search.storage import public_url

PASSWORD = "s3cret-Pw-4711"
SUPER_PASSWORD = "super-Pw-0815"
FAST = ["--set", "epochs=1", "--set", "max_steps=2", "--set", "batch_size=8", "--metric", "f1", "--quiet"]
# 3 x 2 configurations, the recipe defaults (lr 2e-3, warmup_ratio 0.1) among them
CAT_SPACE = ["--space", 'lr=["cat",[0.001,0.002,0.005]]', "--space", 'warmup_ratio=["cat",[0.0,0.1]]']


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    from harness.tasks.qa.demo import generate_demo

    out = tmp_path_factory.mktemp("storage-data")
    generate_demo(out, seed=0, n_train=60, n_dev=20, n_test=10)
    return out


def make_ws(root: Path, data: Path) -> Path:
    """A workspace (one "host") declaring the shared demo files."""
    from harness.competition import init_competition

    root.mkdir(parents=True, exist_ok=True)
    init_competition("demo", root, str(data / "train.json"), str(data / "dev.json"), str(data / "test.json"),
                     str(data / "test_gold.json"), layout="hw7", lang="zh")
    return root


def sub_env(**extra) -> dict:
    """One thread, and no password from the environment or ~/.pgpass unless a test gives one."""
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "HARNESS_STORAGE_PASSWORD", "PGPASSFILE")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PGPASSFILE="/nonexistent-harness/pgpass")
    env.update(extra)
    return env


def harness(ws: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "harness", "-w", str(ws), "-c", str(ws), *args]


def run(cmd: list[str], env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env or sub_env(), capture_output=True, text=True, timeout=timeout)


def trained(study) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")]


def configs(trials, names) -> list[tuple]:
    return [tuple(json.dumps(t.params[k]) for k in names) for t in trials]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    if os.environ.get("HARNESS_PG_BINDIR"):
        return Path(os.environ["HARNESS_PG_BINDIR"])
    found = shutil.which("pg_ctl")
    if found and Path(found).resolve().with_name("initdb").exists():
        return Path(found).resolve().parent
    dirs = glob.glob("/usr/lib/postgresql/*/bin")  # Debian/Ubuntu keep them off PATH
    dirs.sort(key=lambda d: [int(x) for x in re.findall(r"\d+", d)] or [0], reverse=True)
    for d in dirs:
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


class PgServer:
    """A throwaway PostgreSQL cluster: password (SCRAM) logins over TCP on 127.0.0.1:PORT."""

    def __init__(self, bindir: Path, base: Path, owner: pwd.struct_passwd | None):
        self.bindir, self.base, self.owner = bindir, base, owner
        self.data, self.port = base / "data", _free_port()

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.owner is not None:  # initdb and postgres refuse to run as root
            kwargs = {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.base, env=env, capture_output=True,
                              text=True, timeout=timeout, **kwargs)

    def init(self) -> subprocess.CompletedProcess:
        pwfile = self.base / "pw"
        pwfile.write_text(SUPER_PASSWORD + "\n")
        if self.owner is not None:
            os.chown(pwfile, self.owner.pw_uid, self.owner.pw_gid)
        return self._run("initdb", "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}", "-E", "UTF8",
                         "--no-locale", "-N", "--auth-local=trust", "--auth-host=scram-sha-256")

    def start(self) -> subprocess.CompletedProcess:
        opts = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=60")
        return self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "-t", "60",
                         "-o", opts, "start")

    def stop(self, mode: str = "fast") -> subprocess.CompletedProcess:
        return self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def sql(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", password=SUPER_PASSWORD,
                             dbname="postgres", autocommit=True) as conn:
            for s in statements:
                conn.execute(s)

    def new_db(self, name: str) -> str:
        """A fresh database owned by the role ``harness``; its bare URL with the password."""
        self.sql(f"CREATE DATABASE {name} OWNER harness")
        return f"postgresql://harness:{PASSWORD}@127.0.0.1:{self.port}/{name}"

    def public(self, name: str) -> str:
        return f"postgresql://harness@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def pg():
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'harness[postgres]')")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
                    "postgresql (.ci/run does) or set HARNESS_PG_BINDIR")
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as "
                        "(initdb refuses root)")
    base = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    server = PgServer(bindir, base, owner)
    try:
        for step in (server.init, server.start):
            r = step()
            if r.returncode != 0:
                log = (base / "server.log").read_text(errors="replace") if (base / "server.log").exists() else ""
                pytest.skip(f"cannot start a PostgreSQL server with {bindir} ({step.__name__}): "
                            f"{(r.stderr or r.stdout or log).strip()[-400:]}")
        server.sql(f"CREATE ROLE harness LOGIN PASSWORD '{PASSWORD}'")
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- URLs and drivers (no server) -------------------------------------------------------------

def test_public_url_drops_the_password_only():
    assert public_url("postgresql://ann:pw%40x@db.lan:5433/hp") == "postgresql://ann@db.lan:5433/hp"
    assert public_url("postgresql://ann@db.lan/hp?password=pw&sslmode=require") == \
        "postgresql://ann@db.lan/hp?sslmode=require"
    assert public_url("mysql+pymysql://u:p@h/db") == "mysql+pymysql://u@h/db"
    for same in ("postgresql://ann@db.lan/hp", "sqlite:////tmp/x/study.db", "journal:/tmp/x/journal.log"):
        assert public_url(same) == same


def test_no_postgres_driver_names_the_extra(tmp_path, demo_data, monkeypatch):
    ws = make_ws(tmp_path / "ws", demo_data)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # neither driver importable
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    url = f"postgresql://harness:{PASSWORD}@127.0.0.1:9/nowhere"
    r = CliRunner().invoke(main, ["-w", str(ws), "-c", str(ws), "search", "-r", "tiny", "--storage", url, *FAST])
    assert r.exit_code == 2, r.output
    assert "no PostgreSQL driver" in r.output and "pip install 'harness[postgres]'" in r.output
    assert PASSWORD not in r.output and "Traceback" not in r.output


# ---- workers never repeat a configuration (SQLite: always run) --------------------------------

def test_ask_refuses_repeats_queues_untried_and_stops_when_exhausted():
    optuna = pytest.importorskip("optuna")
    from harness.search.storage import ask_new_trial

    class Stuck(optuna.samplers.BaseSampler):
        """Proposes the same value every time (a TPE that has converged, or two samplers with one seed)."""

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, name, distribution):
            return distribution.choices[0] if hasattr(distribution, "choices") else distribution.low

    lines = []
    study = optuna.create_study(direction="maximize", sampler=Stuck())
    space = {"lr": ["cat", [0.001, 0.002]], "doc_stride": ["int", 32, 64, 32]}  # 4 configurations
    asked = []
    while (t := ask_new_trial(study, space, lines.append, attrs={"sampler_seed": 7})) is not None:
        asked.append(t)
        study.tell(t, 1.0)
    keys = [(t.params["lr"], t.params["doc_stride"]) for t in asked]
    assert sorted(keys) == [(0.001, 32), (0.001, 64), (0.002, 32), (0.002, 64)]
    refused = [t for t in study.trials if t.state.name == "FAIL"]
    assert refused and all(t.user_attrs["duplicate_of"] == 0 for t in refused)  # each repeat of trial 0 refused
    assert all(t.user_attrs["sampler_seed"] == 7 for t in study.trials)
    assert lines == ["search space exhausted: all 4 configurations of lr, doc_stride have been tried or are "
                     "running; no new trial started"]
    # a continuous space cannot be enumerated: after MAX draws that all repeat, one line and no trial
    study = optuna.create_study(direction="maximize", sampler=Stuck())
    first = ask_new_trial(study, {"lr": ["log", 1e-5, 1e-3]}, lines.append)
    study.tell(first, 1.0)
    assert ask_new_trial(study, {"lr": ["log", 1e-5, 1e-3]}, lines.append, max_draws=3) is None
    assert lines[-1].startswith("3 draws in a row gave configurations already tried")
    # a re-queued retry of a dead worker's trial runs even though its configuration is known
    study.enqueue_trial(dict(first.params), user_attrs={"retry_of": first.number})
    retry = ask_new_trial(study, {"lr": ["log", 1e-5, 1e-3]}, lines.append)
    assert retry is not None and retry.params == first.params


@pytest.mark.slow
def test_two_processes_never_repeat_a_configuration(tmp_path, demo_data):
    # 6 configurations, 9 trials asked, two `harness search` processes started at once on one study:
    # the old seed (config seed + n_existing) gave both the same draws, and nothing stopped repeats
    ws = make_ws(tmp_path / "ws", demo_data)
    cmd = harness(ws, "search", "-r", "tiny", "--study", "cat", "--trials", "9", *CAT_SPACE,
                  "--set", "epochs=1", "--set", "max_steps=4", "--set", "batch_size=8", "--metric", "f1", "--quiet")
    t0 = time.time()
    procs = [subprocess.Popen(cmd, env=sub_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    print(f"two processes, categorical space: {time.time() - t0:.0f} s")
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
        assert "Traceback" not in out
    from harness.common.workspace import Workspace
    from harness.search.storage import load_study

    study = load_study(Workspace(ws), "cat")
    done = trained(study)
    keys = configs(done, ["lr", "warmup_ratio"])
    print("refused duplicates:", sum("duplicate_of" in t.user_attrs for t in study.get_trials(deepcopy=False)))
    assert len(keys) == len(set(keys)) == 6  # every configuration once, none twice
    assert "search space exhausted: all 6 configurations" in "".join(outs)
    assert [t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get("defaults")] == [0]
    pids = {t.user_attrs["worker"]["pid"] for t in done}
    assert len(pids) == 2, f"one process ran every trial: {outs}"
    seeds = {t.user_attrs["worker"]["pid"]: t.user_attrs["sampler_seed"] for t in done}
    assert len(set(seeds.values())) == 2  # one sampler seed per worker session, recorded in its trials


# ---- PostgreSQL ---------------------------------------------------------------------------------

CREATE_RACE = r"""
import os, pathlib, sys, time
import optuna
real = optuna.create_study
def create_study(*args, **kwargs):
    gate = pathlib.Path(os.environ["RACE_DIR"])
    (gate / str(os.getpid())).touch()
    t0 = time.time()
    while len(list(gate.iterdir())) < 2 and time.time() - t0 < 120:  # both hosts create at the same moment
        time.sleep(0.02)
    study = real(*args, **kwargs)
    time.sleep(2)  # ... and the winner is slow to store its configuration
    return study
optuna.create_study = create_study
from harness.cli import main
sys.exit(main())
"""


@pytest.mark.slow
def test_two_hosts_create_and_share_one_postgres_study(pg, tmp_path, demo_data):
    url = pg.new_db("hosts")
    hosts = [make_ws(tmp_path / f"host{i}", demo_data) for i in (1, 2)]
    gate = tmp_path / "gate"
    gate.mkdir()
    t0 = time.time()
    procs = [subprocess.Popen([sys.executable, "-c", CREATE_RACE, "-w", str(ws), "-c", str(ws), "search", "-r", "tiny",
                               "--study", "shared", "--trials", "6", "--storage", url, *FAST],
                              env=sub_env(RACE_DIR=str(gate)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for ws in hosts]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    print(f"two hosts on PostgreSQL, 6 trials: {time.time() - t0:.0f} s")
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
        assert "Traceback" not in out and PASSWORD not in out
        assert f"dashboard: optuna-dashboard postgresql+psycopg://harness@127.0.0.1:{pg.port}/hosts" in out
    assert sum("created by another worker a moment ago; joining it" in out for out in outs) == 1
    optuna = pytest.importorskip("optuna")
    study = optuna.load_study(study_name="shared", storage=url.replace("postgresql://", "postgresql+psycopg://"))
    done = trained(study)
    assert len(done) == 6
    names = ["lr", "warmup_ratio", "weight_decay", "doc_stride"]
    keys = configs(done, names)
    assert len(set(keys)) == len(keys)  # no configuration twice
    assert [t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get("defaults")] == [0]
    by_pid = {}
    for t in done:
        by_pid.setdefault(t.user_attrs["worker"]["pid"], set()).add(t.user_attrs["sampler_seed"])
    assert len(by_pid) == 2 and all(len(s) == 1 for s in by_pid.values())
    assert len(set.union(*by_pid.values())) == 2  # the hosts' samplers have different seeds
    for ws in hosts:
        record = json.loads((ws / "studies" / "shared" / "search.json").read_text())
        assert record["storage"] == pg.public("hosts")
        assert PASSWORD not in (ws / "studies" / "shared" / "search.json").read_text()


@pytest.mark.slow
def test_postgres_outage_is_one_line_and_the_rerun_resumes(pg, tmp_path, demo_data):
    url = pg.new_db("outage")
    ws = make_ws(tmp_path / "ws", demo_data)
    args = ["search", "-r", "tiny", "--study", "out", "--trials", "3", "--set", "epochs=2", "--set", "max_steps=12",
            "--set", "batch_size=8", "--metric", "f1", "--quiet"]
    trials_dir = ws / "studies" / "out" / "trials"
    proc = subprocess.Popen(harness(ws, *args, "--storage", url), env=sub_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    try:
        while not any(trials_dir.glob(".0001.partial-*")):  # trial 1's folder being built (runs.RunBuilder)
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "trial 1 did not start in time"
            time.sleep(0.05)
        assert pg.stop("immediate").returncode == 0  # the database goes away in the middle of trial 1
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        pg.start()
    assert proc.returncode == 2, out + err
    assert "Traceback" not in out + err and PASSWORD not in out + err
    lines = err.strip().splitlines()
    print(lines)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: the study database {pg.public('outage')} is unreachable (")
    assert lines[0].endswith("the study is safe; rerun the same command to resume")

    record = (ws / "studies" / "out" / "search.json").read_text()
    assert json.loads(record)["storage"] == pg.public("outage") and PASSWORD not in record
    # search.json has no password: without one the rerun says where to give it, on one line + hint
    r = run(harness(ws, *args))
    print(r.stderr)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no password supplied" in r.stderr and "PGPASSWORD" in r.stderr and "Traceback" not in r.stderr
    # with PGPASSWORD (libpq) the same command resumes: the trial the outage interrupted is re-queued
    r = run(harness(ws, *args), env=sub_env(PGPASSWORD=PASSWORD))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "trial 1: left RUNNING by a dead worker" in r.stdout
    assert PASSWORD not in r.stdout + r.stderr
    assert f"dashboard: optuna-dashboard postgresql+psycopg://harness@127.0.0.1:{pg.port}/outage" in r.stdout
    # ... and HARNESS_STORAGE_PASSWORD serves the other commands
    r = run(harness(ws, "trials", "--study", "out"), env=sub_env(HARNESS_STORAGE_PASSWORD=PASSWORD))
    assert r.returncode == 0, r.stdout + r.stderr
    optuna = pytest.importorskip("optuna")
    study = optuna.load_study(study_name="out", storage=url.replace("postgresql://", "postgresql+psycopg://"))
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert states.count("COMPLETE") + states.count("PRUNED") == 3
    assert states[1] == "FAIL" and study.trials[1].user_attrs.get("requeued") is True
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == study.trials[1].params and retry[0].state.name == "COMPLETE"


@pytest.mark.slow
def test_bare_postgres_url_uses_psycopg2_when_it_is_the_driver(pg, tmp_path, demo_data, monkeypatch, one_thread):
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed")
    url = pg.new_db("pg2")
    ws = make_ws(tmp_path / "ws", demo_data)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # only psycopg2 importable (in this process)
    for var in ("HARNESS_STORAGE_PASSWORD", "PGPASSWORD"):  # restored after the test: the search sets the first
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent-harness/pgpass")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # --n-jobs 2: the second worker process gets the password through the environment, never its command line
    r = CliRunner().invoke(main, ["-w", str(ws), "-c", str(ws), "search", "-r", "tiny", "--storage", url,
                                  "--trials", "2", "--n-jobs", "2", *FAST])
    assert r.exit_code == 0, r.output
    assert f"optuna-dashboard postgresql+psycopg2://harness@127.0.0.1:{pg.port}/pg2" in r.output
    assert PASSWORD not in r.output
    assert "2 complete" in r.output and "worker process(es) exited with an error" not in r.output
