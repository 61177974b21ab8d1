"""Where a search study lives: storage URLs, the study lock, worker liveness, dead-trial recovery.

* **Storage**: SQLite for one worker, Optuna's journal file for ``--n-jobs`` > 1 (SQLite is not
  made for parallel writers), or any ``--storage`` URL (:func:`resolve_storage`). The URL is
  recorded in ``studies/NAME/search.json``; the search configuration lives in the study's user
  attrs (:data:`CONFIG_ATTR`, read back by :func:`load_config`).
* **Crash safety**: a trial is built in ``trials/.NNNN.partial`` and renamed when complete, then
  told to Optuna. On start, RUNNING trials whose worker (host + pid + process start time) is dead
  are marked FAIL and their parameters re-queued, or marked COMPLETE when their folder was already
  renamed into place (:func:`recover_dead_trials`). Workers on one host serialise ask/recover with
  a file lock (:func:`study_lock`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import warnings
from pathlib import Path

from harness.common.errors import HarnessError
from harness.common.names import check_name
from harness.common.workspace import Workspace

CONFIG_ATTR = "harness_search"
SEARCH_FILE = "search.json"
SQLITE_FILE = "study.db"
JOURNAL_FILE = "journal.log"
TRIAL_FILE = "trial.json"


def import_optuna():
    """``optuna``, with its logging at WARNING and its ExperimentalWarnings silenced."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def read_json(path: Path) -> dict:
    """A JSON file's object; {} when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# ---- storage -------------------------------------------------------------------------------

def open_storage(url: str):
    """An Optuna storage from ``sqlite:///...`` (or any SQLAlchemy URL), ``journal:PATH`` or ``PATH.log``."""
    optuna = import_optuna()
    if url.startswith("journal:") or (("://" not in url) and url.endswith((".log", ".journal", ".jsonl"))):
        path = url[len("journal:"):] if url.startswith("journal:") else url
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise HarnessError(f"bad --storage '{url}'",
                           hint="sqlite:///path.db, postgresql://..., mysql://..., or journal:path.log")
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except ImportError as e:
        raise HarnessError(f"cannot open storage {url}: {e}", hint="install the database driver") from None


def resolve_storage(study_dir: Path, storage: str | None, n_jobs: int, echo=print) -> str:
    """The storage URL of a study: given > recorded in search.json > SQLite (1 job) / journal (more)."""
    recorded = read_json(study_dir / SEARCH_FILE).get("storage")
    if storage:
        if recorded and recorded != storage and (study_dir / SEARCH_FILE).exists():
            echo(f"note: study folder {study_dir} recorded storage {recorded}; using {storage} as asked")
        return storage
    if recorded:
        if n_jobs > 1 and recorded.startswith("sqlite"):
            raise HarnessError(f"study {study_dir.name} is stored in SQLite, which Optuna advises against for "
                               "parallel writers", hint="resume it with --n-jobs 1, or start a new study (--new or "
                               "another --study) with --n-jobs > 1, which uses a journal file")
        return recorded
    if n_jobs > 1:
        echo(f"--n-jobs {n_jobs}: storing the study in the journal file {study_dir / JOURNAL_FILE} "
             "(Optuna advises against parallel writers on SQLite)")
        return f"journal:{study_dir / JOURNAL_FILE}"
    return f"sqlite:///{study_dir / SQLITE_FILE}"


@contextlib.contextmanager
def study_lock(study_dir: Path):
    """Serialise setup/recovery/ask between the workers of one host (an flock on studies/NAME/.lock)."""
    import fcntl

    study_dir.mkdir(parents=True, exist_ok=True)
    with open(study_dir / ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ---- workers and liveness ------------------------------------------------------------------

def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None  # field 22: start time in clock ticks


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def worker_identity() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _proc_start(pid)}


def worker_alive(info: dict | None) -> bool | None:
    """True/False for a worker of this host; None when it runs elsewhere (cannot tell)."""
    if not info:
        return False
    if info.get("host") != socket.gethostname():
        return None
    pid = int(info.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _proc_state(pid) in ("Z", "X"):
        return False
    start = info.get("start")
    now = _proc_start(pid)
    return not (start and now and start != now)  # a different process reusing the pid


# ---- finding, archiving and recovering a study ----------------------------------------------

def find_study(ws: Workspace, name: str | None) -> str:
    """The study asked for, or the workspace's only one."""
    known = sorted(p.parent.name for p in ws.studies.glob(f"*/{SEARCH_FILE}")) if ws.studies.exists() else []
    if name:
        return check_name(name)
    if len(known) == 1:
        return known[0]
    if not known:
        raise HarnessError("no study in this workspace", hint="start one with `harness search --recipe R`")
    raise HarnessError("several studies: which one?", hint=f"--study one of {', '.join(known)}")


def load_config(ws: Workspace, name: str, storage: str | None = None) -> tuple[dict, str]:
    """(the search configuration saved in study ``name``, its storage URL)."""
    record = read_json(ws.studies / name / SEARCH_FILE)
    url = storage or record.get("storage")
    if not url:
        raise HarnessError(f"no study '{name}' in {ws.studies}", hint="pass --storage URL for a study stored elsewhere")
    optuna = import_optuna()
    try:
        st = optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        raise HarnessError(f"study '{name}' not found in {url}") from None
    config = st.user_attrs.get(CONFIG_ATTR)
    if not config:
        raise HarnessError(f"study '{name}' was not made by `harness search`")
    return config, url


def load_study(ws: Workspace, name: str, storage: str | None = None):
    """The Optuna study ``name`` (to read; a worker's study has its sampler and pruner: ``SearchSetup.load_study``)."""
    _, url = load_config(ws, name, storage)
    return import_optuna().load_study(study_name=name, storage=open_storage(url))


def archive_study(name: str, url: str, store, study_dir: Path, echo) -> None:
    """``--new``: move the study's folder aside (and copy a study in a shared database to NAME.old-STAMP)."""
    optuna = import_optuna()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    inside = str(study_dir) in url
    if not inside:  # a shared database: keep a copy of the old study under another name
        optuna.copy_study(from_study_name=name, from_storage=store, to_storage=store,
                          to_study_name=f"{name}.old-{stamp}")
        optuna.delete_study(study_name=name, storage=store)
    archived = study_dir.with_name(f"{study_dir.name}.old-{stamp}")
    for child in list(study_dir.iterdir()):
        if child.name == ".lock":
            continue
        archived.mkdir(parents=True, exist_ok=True)
        shutil.move(str(child), archived / child.name)
    echo(f"--new: archived the previous study '{name}' in {archived}")


def recover_dead_trials(setup, echo=print) -> list[int]:
    """RUNNING trials of dead workers (this host): FAIL + re-queue, or COMPLETE when their dir is done.

    ``setup`` is the study's :class:`harness.search.run.SearchSetup` (its storage, name and trial folders).
    Call with the study lock held. Returns the numbers of the trials handled.
    """
    optuna = import_optuna()
    from optuna.trial import TrialState

    store = open_storage(setup.storage)
    study = optuna.load_study(study_name=setup.name, storage=store)
    handled = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        info = t.user_attrs.get("worker")
        alive = worker_alive(info)
        if alive:
            continue
        if alive is None:
            echo(f"note: trial {t.number} is running on {info.get('host')} (pid {info.get('pid')}); left alone")
            continue
        done = read_json(setup.trial_dir(t.number) / TRIAL_FILE)
        if done.get("value") is not None:
            for k, v in done.get("user_attrs", {}).items():
                store.set_trial_user_attr(t._trial_id, k, v)
            store.set_trial_state_values(t._trial_id, TrialState.COMPLETE, [float(done["value"])])
            echo(f"trial {t.number}: its worker died after finishing; recorded as COMPLETE ({done['value']:.2f})")
        else:
            store.set_trial_user_attr(t._trial_id, "requeued", True)
            store.set_trial_state_values(t._trial_id, TrialState.FAIL)
            user_attrs = {"retry_of": t.number}
            if t.user_attrs.get("defaults"):
                user_attrs["defaults"] = True
            study.enqueue_trial(dict(t.params), user_attrs=user_attrs)
            shutil.rmtree(setup.partial_dir(t.number), ignore_errors=True)
            echo(f"trial {t.number}: left RUNNING by a dead worker (pid {(info or {}).get('pid')}); "
                 "marked FAIL, its parameters re-queued")
        handled.append(t.number)
    return handled
