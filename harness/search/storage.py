"""Where a search study lives: storage URLs, the study lock, worker liveness, dead-trial recovery,
and how a worker asks for a configuration no other worker has tried.

* **Storage**: SQLite for one worker, Optuna's journal file for ``--n-jobs`` > 1 (SQLite is not
  made for parallel writers), or any ``--storage`` URL (:func:`resolve_storage`), e.g. a
  PostgreSQL server shared by several hosts. A bare ``postgresql://`` URL uses whichever driver is
  installed (psycopg 3, else psycopg2; :func:`open_storage`). The URL is recorded in
  ``studies/NAME/search.json``; the search configuration lives in the study's user attrs
  (:data:`CONFIG_ATTR`, read back by :func:`load_config`).
* **Passwords** are never printed nor written: a URL is kept without its password
  (:func:`public_url`), which is remembered in this process only. A later command finds it in
  ``--storage`` given again, :data:`PASSWORD_ENV`, or libpq's own ``PGPASSWORD`` / ``~/.pgpass``.
* **Outages**: a database error that means "cannot reach the server" ends the command with one
  line (:class:`HarnessError`) naming the URL; the study is safe and the same command resumes it.
* **Several workers, processes or hosts on one study**: each worker session seeds its sampler
  from ``os.urandom`` (:func:`session_seed`, recorded in each trial's ``sampler_seed``), and
  :func:`ask_new_trial` samples every parameter at ask time and refuses a configuration that a
  finished, running or queued trial already has (the refused trial is marked FAIL with
  ``duplicate_of``), queueing an untried one instead in a finite space and stopping with one line
  when the space is exhausted. A new study is created once (:func:`create_study_once`): a host
  that loses the creation race joins the winner's study.
* **Crash safety**: a trial is built in ``trials/.NNNN.partial`` and renamed when complete, then
  told to Optuna. On start, RUNNING trials whose worker (host + pid + process start time) is dead
  are marked FAIL and their parameters re-queued, or marked COMPLETE when their folder was already
  renamed into place (:func:`recover_dead_trials`). Workers on one host serialise ask/recover with
  a file lock (:func:`study_lock`).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import itertools
import json
import math
import os
import random
import shutil
import socket
import time
import warnings
from pathlib import Path

from harness.common.errors import HarnessError
from harness.common.io import read_json
from harness.common.names import check_name
from harness.common.workspace import Workspace
from harness.runs import TRIAL_RECORD

CONFIG_ATTR = "harness_search"
SEARCH_FILE = "search.json"
SQLITE_FILE = "study.db"
JOURNAL_FILE = "journal.log"
PASSWORD_ENV = "HARNESS_STORAGE_PASSWORD"
POSTGRES_HINT = "pip install 'harness[postgres]' (psycopg 3), or pip install psycopg2-binary"
JOIN_WAIT_S = 30.0          # how long a joining worker waits for the creator to store the configuration
UNSIGNED_GRACE_S = 120.0    # a RUNNING trial without its worker attr is that young: just asked, not dead
MAX_DUPLICATE_DRAWS = 10    # consecutive draws of known configurations before a worker gives up
CONNECT_TIMEOUT_S = 10

_passwords: dict[str, str] = {}  # public URL -> the password given for it in this process


def import_optuna():
    """``optuna``, with its logging at WARNING and its ExperimentalWarnings silenced."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# ---- storage URLs and passwords --------------------------------------------------------------

def _is_journal(url: str) -> bool:
    return url.startswith("journal:") or (("://" not in url) and url.endswith((".log", ".journal", ".jsonl")))


def _is_server(url: str) -> bool:
    """A database server URL (postgresql://, mysql://, ...): the ones that can carry a password."""
    return "://" in url and not url.startswith("sqlite") and not _is_journal(url)


def _parse(url: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        scheme = url.split("://", 1)[0]
        raise HarnessError(f"bad --storage URL ({scheme}://...)",
                           hint="e.g. postgresql://USER@HOST:PORT/DB, sqlite:///path.db or journal:path.log") from None


def _split_password(url: str) -> tuple[str, str | None]:
    """(``url`` without its password -- ``user:pw@`` or ``?password=`` --, the password or None)."""
    if not _is_server(url):
        return url, None
    u = _parse(url)
    password = u.password
    query = dict(u.query)
    in_query = query.pop("password", None)
    if password is None and in_query is not None:
        password = in_query[-1] if isinstance(in_query, tuple) else in_query
    if password is None:
        return url, None
    from sqlalchemy.engine import URL

    bare = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, query)
    return bare.render_as_string(hide_password=False), str(password)


def public_url(url: str, export: bool = False) -> str:
    """``url`` without its password: what is printed, recorded in search.json and passed to workers.

    A password found in ``url`` is remembered for :func:`open_storage` in this process; ``export``
    also puts it in :data:`PASSWORD_ENV` for the worker processes this one starts (an environment
    variable, never a command line). A URL without a password is returned unchanged.
    """
    bare, password = _split_password(url)
    if password is not None:
        _passwords[bare] = password
        if export:
            os.environ[PASSWORD_ENV] = password
    return bare


def _postgres_driver() -> str:
    """``postgresql+psycopg`` (psycopg 3) or ``postgresql+psycopg2``, whichever is installed."""
    for module, driver in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        try:
            __import__(module)
        except ImportError:
            continue
        return driver
    raise HarnessError("no PostgreSQL driver is installed (psycopg 3 or psycopg2)", hint=POSTGRES_HINT)


def _with_driver(u):
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3 only; pick the driver that is there
    if u.drivername in ("postgresql", "postgres"):
        return u.set(drivername=_postgres_driver())
    return u


def _connect_url(public: str):
    """The URL SQLAlchemy connects with: the password put back (when this process knows one) and the
    PostgreSQL driver chosen. Without a password libpq reads PGPASSWORD / ~/.pgpass itself."""
    u = _with_driver(_parse(public))
    if u.password is None and "password" not in u.query:
        password = _passwords.get(public) or os.environ.get(PASSWORD_ENV)
        if password:
            u = u.set(password=password)
    return u


def dashboard_target(url: str) -> str:
    """What to give ``optuna-dashboard`` for a study's storage (no password; the driver named)."""
    if url.startswith("journal:"):
        return url[len("journal:"):]
    if not _is_server(url):
        return url
    try:
        return _with_driver(_parse(url)).render_as_string(hide_password=True)
    except HarnessError:
        return url


def _reason(e: BaseException) -> str:
    """The database's own words for an error, on one line."""
    orig = getattr(e, "orig", None)
    cause = e.__cause__ if orig is None else orig
    if orig is None and cause is not None and getattr(cause, "orig", None) is not None:
        cause = cause.orig
    text = str(cause if cause is not None else e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[0] if lines else type(e).__name__
    line = line.removeprefix("(psycopg.OperationalError) ").removeprefix("(psycopg2.OperationalError) ")
    return line[:300]


def _unreachable(e: BaseException) -> bool:
    """Does ``e`` (or what caused it) mean the database could not be reached or the connection was lost?"""
    import sqlalchemy.exc as sa_exc

    seen = 0
    while e is not None and seen < 6:
        if isinstance(e, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                          sa_exc.TimeoutError)):
            return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        e = e.__cause__  # SQLAlchemy and Optuna chain with `raise ... from`
        seen += 1
    return False


def _needs_password(reason: str) -> bool:
    return any(s in reason for s in ("no password supplied", "password authentication failed",
                                     "Access denied for user"))


def _open_error(public: str, e: BaseException) -> HarnessError:
    reason = _reason(e)
    if _needs_password(reason):
        return HarnessError(f"cannot open the study database {public}: {reason}",
                            hint=f"the password is never saved: give --storage with it again, or set PGPASSWORD "
                                 f"(or a ~/.pgpass line, or {PASSWORD_ENV})")
    if public.startswith("sqlite"):
        return HarnessError(f"cannot open the study database {public}: {reason}",
                            hint="check that its folder exists and is writable")
    return HarnessError(f"cannot reach the study database {public}: {reason}",
                        hint="is the database server running and reachable from this host? The study itself is "
                             "safe; rerun the same command once it is")


class StorageLost(HarnessError):
    """The study database went away while a command was using it (one line, no hint). A trial that
    was running stays RUNNING, and the next start re-queues it (:func:`recover_dead_trials`)."""


def storage_lost(public: str, e: BaseException) -> StorageLost:
    """The one-line error of a database that went away while a command was using it."""
    return StorageLost(f"the study database {public} is unreachable ({_reason(e)}); "
                       "the study is safe; rerun the same command to resume")


_GUARDED: dict[str, type] = {}


def _guarded_rdb_class():
    """An RDBStorage whose public methods turn a lost database into :func:`storage_lost` (one line)."""
    if "rdb" in _GUARDED:
        return _GUARDED["rdb"]
    from optuna.storages import RDBStorage

    def guard(fn):
        @functools.wraps(fn)
        def method(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except HarnessError:
                raise
            except Exception as e:
                if _unreachable(e):
                    raise storage_lost(getattr(self, "harness_url", "(database)"), e) from e
                raise

        return method

    namespace = {}
    for name in dir(RDBStorage):
        if name.startswith("_"):
            continue
        raw = inspect.getattr_static(RDBStorage, name)
        if inspect.isfunction(raw):
            namespace[name] = guard(raw)
    cls = type("GuardedRDBStorage", (RDBStorage,), namespace)
    _GUARDED["rdb"] = cls
    return cls


def _new_rdb(target: str, kwargs: dict, tries: int = 5):
    """The guarded RDBStorage. Two hosts opening a fresh database at once both create Optuna's tables;
    the loser's CREATE TABLE fails on a unique catalog key: the tables exist by then, so open again."""
    import sqlalchemy.exc as sa_exc

    for attempt in range(tries):
        try:
            return _guarded_rdb_class()(target, engine_kwargs=kwargs)
        except (sa_exc.IntegrityError, sa_exc.ProgrammingError) as e:
            if attempt == tries - 1 or not (isinstance(e, sa_exc.IntegrityError) or "already exists" in str(e)):
                raise
            time.sleep(0.2 + random.random())


def open_storage(url: str):
    """An Optuna storage from ``sqlite:///...`` (or any SQLAlchemy URL), ``journal:PATH`` or ``PATH.log``.

    Server URLs may carry a password or get it from :data:`PASSWORD_ENV` / libpq; errors name the URL
    without it. A database that cannot be reached, now or later, ends the command with one line.
    """
    optuna = import_optuna()
    if _is_journal(url):
        path = url[len("journal:"):] if url.startswith("journal:") else url
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise HarnessError(f"bad --storage '{url}'",
                           hint="sqlite:///path.db, postgresql://..., mysql://..., or journal:path.log")
    public = public_url(url)
    if url.startswith("sqlite"):
        target, kwargs = url, {"connect_args": {"timeout": 60}}
    else:
        u = _connect_url(public)
        target, kwargs = u, {"pool_pre_ping": True}
        if u.drivername.startswith("postgresql") and "connect_timeout" not in u.query:
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        target = u.render_as_string(hide_password=False)
    try:
        store = _new_rdb(target, kwargs)
    except ImportError as e:
        hint = POSTGRES_HINT if public.startswith("postgres") else "install the database driver the URL names"
        raise HarnessError(f"cannot open storage {public}: {e.__cause__ or e}", hint=hint) from None
    except HarnessError:
        raise
    except Exception as e:
        import sqlalchemy.exc as sa_exc

        if _unreachable(e) or isinstance(e, optuna.exceptions.StorageInternalError):
            raise _open_error(public, e) from None
        if isinstance(e, sa_exc.SQLAlchemyError):  # e.g. no right to create Optuna's tables
            raise HarnessError(f"cannot use the study database {public}: {_reason(e)}",
                               hint="Optuna creates its tables there on first use: the user needs the right to "
                                    "create tables (e.g. own the database)") from None
        raise
    store.harness_url = public
    return store


def resolve_storage(study_dir: Path, storage: str | None, n_jobs: int, echo=print) -> str:
    """The storage URL of a study: given > recorded in search.json > SQLite (1 job) / journal (more).

    The URL returned carries no password (:func:`public_url`); with ``n_jobs`` > 1 a given password
    is passed to the worker processes through :data:`PASSWORD_ENV`.
    """
    recorded = read_json(study_dir / SEARCH_FILE).get("storage")
    if recorded:  # a search.json of an older version may hold a password: used, no longer written
        recorded = public_url(recorded, export=n_jobs > 1)
    if storage:
        given = public_url(storage, export=n_jobs > 1)
        if recorded and recorded != given and (study_dir / SEARCH_FILE).exists():
            echo(f"note: study folder {study_dir} recorded storage {recorded}; using {given} as asked")
        return given
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


# ---- creating a study once, joining it ------------------------------------------------------

def study_config(store, name: str, wait: float = JOIN_WAIT_S) -> tuple[bool, dict | None]:
    """(whether study ``name`` exists in ``store``, its harness configuration or None).

    A study that exists without a configuration and without a trial that ever ran is one that
    another worker (host) is creating right now: it stores the configuration just after creating
    the study, so this waits up to ``wait`` seconds for it.
    """
    from optuna.trial import TrialState

    deadline = time.time() + wait
    while True:
        try:
            study_id = store.get_study_id_from_name(name)
        except KeyError:
            return False, None
        config = store.get_study_user_attrs(study_id).get(CONFIG_ATTR)
        if config is not None:
            return True, config
        fresh = all(t.state == TrialState.WAITING for t in store.get_all_trials(study_id, deepcopy=False))
        if not fresh or time.time() >= deadline:
            return True, None
        time.sleep(0.5)


def create_study_once(store, name: str, config: dict, defaults: dict) -> dict | None:
    """Create study ``name`` with ``defaults`` queued as trial 0 and ``config`` in its user attrs; None.

    When another worker or host created it first (``DuplicatedStudyError``), nothing is added and
    its configuration is returned instead (waited for: the creator stores it last), to join it.
    """
    optuna = import_optuna()
    try:
        st = optuna.create_study(study_name=name, storage=store, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        _, saved = study_config(store, name)
        if saved is None:
            raise HarnessError(f"study '{name}' was just created by another worker, which did not store its "
                               f"configuration within {JOIN_WAIT_S:.0f} s",
                               hint="rerun the command; if that worker was stopped, pick another --study") from None
        return saved
    st.enqueue_trial(defaults, user_attrs={"defaults": True})
    st.set_user_attr(CONFIG_ATTR, config)  # last: a joining worker waits for it, so trial 0 is queued by then
    return None


# ---- asking for a configuration nobody has tried --------------------------------------------

def session_seed() -> int:
    """A sampler seed for one worker session, from ``os.urandom``: two workers, processes or hosts
    started at the same moment on one study never replay each other's draws."""
    return int.from_bytes(os.urandom(4), "little")


class _Recorder:
    """Stands in for a trial to read the distributions :func:`harness.search.space.suggest` asks for."""

    def __init__(self):
        from optuna import distributions

        self.d, self.dist = {}, distributions

    def suggest_float(self, name, low, high, *, step=None, log=False):
        self.d[name] = self.dist.FloatDistribution(low, high, step=step, log=log)
        return low

    def suggest_int(self, name, low, high, *, step=1, log=False):
        self.d[name] = self.dist.IntDistribution(low, high, step=step, log=log)
        return low

    def suggest_categorical(self, name, choices):
        self.d[name] = self.dist.CategoricalDistribution(choices)
        return choices[0]


def space_distributions(space: dict) -> dict:
    """The Optuna distributions of a search space, exactly as the objective suggests them."""
    from harness.search.space import suggest

    rec = _Recorder()
    suggest(rec, space)
    return rec.d


def _axis(spec) -> list | None:
    """The values of one finite dimension (None for a continuous one)."""
    kind = spec[0]
    if kind == "cat":
        return list(spec[1])
    if kind == "int":
        step = int(spec[3]) if len(spec) > 3 else 1
        return list(range(int(spec[1]), int(spec[2]) + 1, step))
    if kind == "float" and len(spec) > 3 and spec[3]:
        lo, hi, step = float(spec[1]), float(spec[2]), float(spec[3])
        return [lo + i * step for i in range(int(math.floor((hi - lo) / step + 1e-9)) + 1)]
    return None


def space_size(space: dict) -> int | None:
    """How many configurations a space has; None when a dimension is continuous."""
    n = 1
    for spec in space.values():
        axis = _axis(spec)
        if axis is None:
            return None
        n *= len(axis)
    return n


def _norm(spec, value):
    kind = spec[0]
    if kind == "cat":
        return json.dumps(value, sort_keys=True, default=str)
    if kind == "int" or (kind == "float" and len(spec) > 3 and spec[3]):  # grid index: no rounding surprises
        return int(round((float(value) - float(spec[1])) / float(spec[3] if len(spec) > 3 else 1)))
    return float(value)


def config_key(params: dict, space: dict) -> tuple | None:
    """A hashable configuration of ``params`` over ``space``; None when some parameter is missing."""
    if any(k not in params for k in space):
        return None
    return tuple(_norm(spec, params[k]) for k, spec in space.items())


def _trial_key(t, space: dict) -> tuple | None:
    """The configuration a trial has tried, runs or will run (FAIL: none, unless its training diverged:
    the same configuration and seed would diverge again)."""
    from optuna.trial import TrialState

    if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) or \
            (t.state == TrialState.FAIL and t.user_attrs.get("diverged")):
        return config_key(t.params, space)
    if t.state == TrialState.WAITING:
        return config_key(t.system_attrs.get("fixed_params") or {}, space)
    return None


def _untried(space: dict, taken: set, rng: random.Random) -> dict | None:
    """A random configuration of a finite space that no trial has."""
    names = list(space)
    axes = [_axis(space[k]) for k in names]
    size = math.prod(len(a) for a in axes)
    if size <= 50_000:
        free = [combo for combo in itertools.product(*axes)
                if config_key(dict(zip(names, combo)), space) not in taken]
        return dict(zip(names, rng.choice(free))) if free else None
    for _ in range(2_000):
        combo = dict(zip(names, (rng.choice(a) for a in axes)))
        if config_key(combo, space) not in taken:
            return combo
    return None


def ask_new_trial(study, space: dict, echo=print, attrs: dict | None = None,
                  max_draws: int = MAX_DUPLICATE_DRAWS):
    """``study.ask()`` with every parameter of ``space`` sampled at once, never repeating a configuration.

    A sampled configuration equal to a COMPLETE, PRUNED, RUNNING, WAITING or diverged trial's is told FAIL
    (user attr ``duplicate_of``) and asked again; in a finite space the next try queues a random
    untried configuration. Each asked trial gets ``attrs`` (worker, sampler seed) as user attrs at once.
    Trials queued on purpose (the recipe defaults, the retry of a dead worker's trial) are kept.
    Returns None, after one line, when the space is exhausted or ``max_draws`` draws all repeated.
    The check runs after this trial's parameters are stored, against everyone's: of two workers that
    draw one configuration at the same moment, the later checker always sees the other's.
    """
    from optuna.trial import TrialState

    distributions = space_distributions(space)
    size = space_size(space)
    rng = random.Random()
    for draw in range(max_draws):
        taken = {k for t in study.get_trials(deepcopy=False) if (k := _trial_key(t, space)) is not None}
        if size is not None and len(taken) >= size:
            echo(f"search space exhausted: all {size} configuration{'s' if size != 1 else ''} of "
                 f"{', '.join(space) or 'the empty space'} have been tried or are running; no new trial started")
            return None
        if draw and size is not None:
            pick = _untried(space, taken, rng)
            if pick is not None:
                study.enqueue_trial(pick, user_attrs={"untried_pick": True})
        trial = study.ask(distributions)
        for k, v in (attrs or {}).items():
            trial.set_user_attr(k, v)
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        me = trials.get(trial.number)
        fixed = (me.system_attrs.get("fixed_params") if me is not None else None) or {}
        if (trial.user_attrs.get("defaults") or "retry_of" in trial.user_attrs) and \
                config_key(fixed, space) is not None:
            return trial  # queued on purpose with its whole configuration
        key = config_key(trial.params, space)
        twin = next((t for n, t in trials.items() if n != trial.number and _trial_key(t, space) == key), None)
        if twin is None:
            return trial
        trial.set_user_attr("duplicate_of", twin.number)
        study.tell(trial, state=TrialState.FAIL)
    echo(f"{max_draws} draws in a row gave configurations already tried; no new trial started "
         "(widen the space, or try --sampler random)")
    return None


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
    """(the search configuration saved in study ``name``, its storage URL without a password)."""
    record = read_json(ws.studies / name / SEARCH_FILE)
    url = storage or record.get("storage")
    if not url:
        raise HarnessError(f"no study '{name}' in {ws.studies}", hint="pass --storage URL for a study stored elsewhere")
    url = public_url(url)
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

    ``setup`` is the study's :class:`harness.search.setup.SearchSetup` (its storage, name and trial folders).
    Call with the study lock held. Returns the numbers of the trials handled.
    """
    optuna = import_optuna()
    from optuna.trial import TrialState

    store = open_storage(setup.storage)
    study = optuna.load_study(study_name=setup.name, storage=store)
    handled = []
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        info = t.user_attrs.get("worker")
        if not info and t.datetime_start and (now - t.datetime_start).total_seconds() < UNSIGNED_GRACE_S:
            continue  # just asked by a worker (maybe on another host) that has not signed it yet
        alive = worker_alive(info)
        if alive:
            continue
        if alive is None:
            echo(f"note: trial {t.number} is running on {info.get('host')} (pid {info.get('pid')}); left alone")
            continue
        done = read_json(setup.trial_dir(t.number) / TRIAL_RECORD)
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
