"""Run and trial folders: the one owner of their layout, their completeness, and the logits file format.

A run folder (``runs/NAME/``; a search trial's ``studies/STUDY/trials/NNNN/`` is one too)::

    config.json     the resolved configuration (:class:`~harness.config.RunConfig` groups) + label set, provenance
    metrics.json    per-epoch loss and dev scores, best epoch, timings
    train.log       the same, one JSON line per epoch
    model/          best model + tokenizer (``save_pretrained``); absent for k-fold trials
    logits/SPLIT.npz  versioned logits files (:func:`write_npz`): dev, test, oof
    COMPLETE        written last: a manifest of every file and its size

**All or nothing.** A run is built in a hidden folder beside its final place
(``.NAME.partial-PID``, :class:`RunBuilder`) and renamed into place only after its weights,
tokenizer, logits and metrics are all written and the manifest is down, so no other command ever
sees a half-written run: a run killed (or failed, or diverged) mid-way leaves only a hidden
partial folder, which :func:`sweep_partials` removes on a later start once its process is gone.
:meth:`Run.problem` says what is wrong with a folder that is not a usable run (no marker, a file of
the manifest missing or of another size) and every consumer (predict, submit, ensembles, refit,
the board) asks it first through :func:`find_run`.

Runs are named ``NAME`` (``runs/NAME``), ``STUDY/tN`` (trial N of a study) or by a folder path.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from harness.common.errors import HarnessError
from harness.common.io import atomic_write, atomic_write_json, pid_alive, read_json, storage_error
from harness.common.names import check_name, listing

CONFIG = "config.json"
METRICS = "metrics.json"
MODEL = "model"
LOGITS = "logits"
MARKER = "COMPLETE"
TRIAL_RECORD = "trial.json"  # a search trial's record (number, value, params), inside its run folder
PARTIAL = ".partial-"
TRIAL_DIGITS = 4


# ---------------------------------------------------------------- logits files (the envelope)
def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray], meta: Mapping, fmt: str, version: int) -> Path:
    """Write ``arrays`` + ``meta`` (JSON, with ``format``/``version``) as one compressed ``.npz``, atomically."""
    payload = dict(arrays)
    payload["meta"] = np.asarray(json.dumps({"format": fmt, "version": version, **meta}, default=str))
    return atomic_write(Path(path), lambda f: np.savez_compressed(f, **payload))


def read_npz(path: str | Path, fmt: str, version: int, what: str) -> tuple[dict, dict]:
    """Every array of a logits file and its meta, after checking the file is ``fmt`` up to ``version``."""
    path = Path(path)
    if not path.exists():
        raise HarnessError(f"no logits at {path}", hint="run `harness predict --run RUN --data SPLIT` first")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise HarnessError(f"{path}: unreadable logits file ({type(e).__name__}: {str(e)[:100]})",
                           hint="delete it and predict again (`harness predict`)") from None
    if meta.get("format") != fmt or meta.get("version", 0) > version:
        raise HarnessError(f"{path}: not a {what} file this harness reads (format {meta.get('format')} "
                           f"v{meta.get('version')}; it reads {fmt} v{version})")
    return arrays, meta


# ---------------------------------------------------------------- a run
@dataclass
class Run:
    """A run folder (complete or not: ask :meth:`problem`)."""

    path: Path
    ref: str = ""  # how the user names it: NAME, STUDY/tN or the path

    def __post_init__(self):
        self.path = Path(self.path)
        self.ref = self.ref or self.path.name

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL

    def logits_path(self, split: str) -> Path:
        return self.path / LOGITS / f"{split}.npz"

    def has_logits(self, split: str) -> bool:
        return self.logits_path(split).is_file()

    def config(self) -> dict:
        cfg = read_json(self.path / CONFIG)
        if not cfg:
            raise HarnessError(f"run {self.ref}: {self.path / CONFIG} is missing or unreadable",
                               hint=f"retrain it, or delete {self.path}")
        return cfg

    def run_config(self):
        from harness.config import RunConfig

        return RunConfig.from_dict(self.config())

    def metrics(self) -> dict:
        return read_json(self.path / METRICS)

    def manifest(self) -> dict:
        return read_json(self.path / MARKER)

    def problem(self) -> str | None:
        """None for a complete run, else what is wrong with the folder (one phrase)."""
        if not self.path.is_dir():
            return "no such folder"
        manifest = self.manifest()
        if not manifest:
            if (self.path / MARKER).exists():
                return f"its {MARKER} manifest is unreadable"
            return ("it was not finished (training was killed, failed or is still running; a run made by a harness "
                    f"before 0.2 has no {MARKER} manifest either)")
        for rel, size in (manifest.get("files") or {}).items():
            f = self.path / rel
            if not f.is_file():
                return f"{rel} is missing"
            if f.stat().st_size != size:
                return f"{rel} has {f.stat().st_size} bytes, {size} were written"
        return None

    @property
    def is_complete(self) -> bool:
        return self.problem() is None

    def validation_logits(self) -> tuple[str | None, Path | None]:
        """(kind, path) of the logits to fit ensemble weights on: the run's own dev logits, else its
        out-of-fold logits, else those of the trial it was refit from (None, None without any)."""
        for kind in ("dev", "oof"):
            if self.has_logits(kind):
                return kind, self.logits_path(kind)
        source = self.config().get("validation_logits")
        if source and Path(source).is_file():
            return "trial-" + Path(source).stem, Path(source)
        return None, None

    def add_file(self, rel: str) -> None:
        """Record a file written into a complete run later (``logits/test.npz``) in its manifest."""
        manifest = self.manifest()
        if manifest:
            manifest.setdefault("files", {})[rel] = (self.path / rel).stat().st_size
            atomic_write_json(self.path / MARKER, manifest)

    def drop_model(self) -> None:
        """Delete the saved model (a search keeps only its best trials' models); the run stays complete
        for its logits, and says it has no model when asked to predict."""
        if not self.model_dir.exists():
            return
        manifest = self.manifest()
        shutil.rmtree(self.model_dir, ignore_errors=True)
        if manifest:
            manifest["files"] = {k: v for k, v in manifest.get("files", {}).items() if not k.startswith(MODEL + "/")}
            manifest["model_dropped"] = True
            atomic_write_json(self.path / MARKER, manifest)

    def save_logits(self, split: str, task, logits, meta: Mapping | None = None) -> Path:
        """Write ``logits/SPLIT.npz`` (the task's format) and record it."""
        path = task.save_logits(self.logits_path(split), logits, {"split": split, "run": self.ref, **(meta or {})})
        self.add_file(f"{LOGITS}/{split}.npz")
        return path


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in (MARKER, ".owner")}


class RunBuilder:
    """Build a run in a hidden folder beside ``final``; :meth:`commit` makes it visible.

    Use as a context manager: on an exception the partial folder is removed (a failed, pruned or
    diverged run leaves nothing behind); :meth:`commit` checks the required parts, writes the
    manifest last and renames the folder into place (replacing an earlier folder of the same
    name, e.g. a trial retried after a crash).

    ``group``: the processes of a data-parallel launch (:class:`harness.train.loop.Launch`). Only its
    main process creates, fills and commits the one partial folder (the others learn its path, write
    nothing and remove nothing), and it commits only once every process has reached :meth:`commit`:
    a process that failed or died before keeps the run from ever becoming visible.
    """

    def __init__(self, final: str | Path, ref: str = "", group=None):
        self.final = Path(final)
        self.ref = ref or self.final.name
        self.group = group
        self.writer = group is None or group.is_main
        self.path = self.final.parent / f".{self.final.name}{PARTIAL}{os.getpid()}"
        self.committed: Run | None = None

    def __enter__(self) -> RunBuilder:
        if self.group is None:
            self._create()
        else:
            self.path = Path(self.group.decide(self._create, barrier=False))
        return self

    def _create(self) -> str:
        try:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True)
            atomic_write_json(self.path / ".owner", {"host": socket.gethostname(), "pid": os.getpid(),
                                                     "started": time.time()})
        except OSError as e:
            raise storage_error(e, self.path, "create") from None
        return str(self.path)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.committed is None and self.writer:
            shutil.rmtree(self.path, ignore_errors=True)
        return False

    def commit(self, require: Iterable[str] = (CONFIG, METRICS)) -> Run:
        """Check every ``require`` d part exists (files, or folders that are not empty), write the
        manifest and rename the run into place (with a ``group``: on its main process, after every
        process got here; every process gets the committed run, or the error)."""
        if self.group is None:
            self.committed = Run(self._commit(require), self.ref)
        else:
            self.committed = Run(Path(self.group.decide(lambda: str(self._commit(require)))), self.ref)
        return self.committed

    def _commit(self, require: Iterable[str]) -> Path:
        for rel in require:
            p = self.path / rel
            if not (p.is_file() and p.stat().st_size > 0) and not (p.is_dir() and any(p.iterdir())):
                raise HarnessError(f"run {self.ref}: {rel} was not written", hint="the run is not saved; rerun it")
        atomic_write_json(self.path / MARKER, {"files": _files(self.path), "completed": time.time()})
        (self.path / ".owner").unlink(missing_ok=True)
        try:
            if self.final.exists():
                trash = self.final.with_name(f".{self.final.name}.replaced-{os.getpid()}")
                os.replace(self.final, trash)
                os.replace(self.path, self.final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(self.path, self.final)
        except OSError as e:
            raise storage_error(e, self.final, "save the run as") from None
        return self.final


def sweep_partials(folder: str | Path) -> list[Path]:
    """Remove the partial folders under ``folder`` whose building process (on this host) is gone."""
    folder = Path(folder)
    gone = []
    if not folder.is_dir():
        return gone
    for p in folder.glob(f".*{PARTIAL}*"):
        owner = read_json(p / ".owner")
        pid = owner.get("pid") or int(p.name.rsplit(PARTIAL, 1)[-1] or -1)
        if owner.get("host", socket.gethostname()) != socket.gethostname():
            continue
        if not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    for p in folder.glob(".*.replaced-*"):
        shutil.rmtree(p, ignore_errors=True)
    return gone


# ---------------------------------------------------------------- names and lookup
def trial_dir(study_dir: str | Path, number: int) -> Path:
    """The folder of trial ``number`` of a study (``trials/0007``)."""
    return Path(study_dir) / "trials" / f"{int(number):0{TRIAL_DIGITS}d}"


def trial_ref(study: str, number: int) -> str:
    """How a trial is named as an ensemble member and on the board: ``STUDY/t7``."""
    return f"{study}/t{int(number)}"


def new_run_path(runs_dir: Path, name: str | None, prefix: str) -> Path:
    """Where a new run goes: ``runs/NAME`` (refused when a run or a live build of it exists) or
    ``runs/PREFIX-TIMESTAMP``."""
    if name:
        check_name(name)
        path = runs_dir / name
        if path.exists():
            run = Run(path)
            what = "exists" if run.is_complete else f"exists but is not usable ({run.problem()})"
            raise HarnessError(f"run '{name}' {what} at {path}", hint="pick another --name or delete that folder")
        live = [p for p in runs_dir.glob(f".{name}{PARTIAL}*")
                if pid_alive(int(read_json(p / ".owner").get("pid") or -1))]
        if live:
            raise HarnessError(f"run '{name}' is being trained right now by another process ({live[0].name})",
                               hint="pick another --name")
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = runs_dir / f"{prefix}-{stamp}"
    k = 1
    while path.exists() or any(runs_dir.glob(f".{path.name}{PARTIAL}*")):
        k += 1
        path = runs_dir / f"{prefix}-{stamp}-{k}"
    return path


def _trial_from_ref(ws, ref: str) -> Path | None:
    study, _, number = ref.partition("/")
    number = number[1:] if number[:1] in ("t", "T") else number
    if study and number.isdigit() and (ws.studies / study).is_dir():
        return trial_dir(ws.studies / study, int(number))
    return None


def find_run(ws, ref: str, require_complete: bool = True) -> Run:
    """The run named ``ref`` (NAME under runs/, STUDY/tN, or a folder path); a complete one unless
    ``require_complete`` is False. The error says what is wrong and how to redo it."""
    ref = str(ref).strip()
    candidates = [ws.runs / ref] if ref and "/" not in ref and os.sep not in ref else []
    trial = _trial_from_ref(ws, ref)
    if trial is not None:
        candidates.append(trial)
    candidates += [Path(ref).expanduser(), ws.root / ref]
    for path in candidates:
        if path.is_dir() and ((path / CONFIG).exists() or (path / MARKER).exists() or trial == path):
            shown = trial_ref(ref.partition("/")[0], int(path.name)) if trial == path else ref
            run = Run(path.resolve(), shown)
            why = run.problem()
            if why and require_complete:
                redo = ("rerun `harness search` (the trial is redone)" if trial == path or "trials" in path.parts
                        else f"train it again (`harness train ... --name {path.name}`) after deleting {path}")
                raise HarnessError(f"run {shown} is not usable: {why}", hint=redo)
            return run
    if trial is not None:
        raise HarnessError(f"study {ref.partition('/')[0]} has no finished trial {ref.partition('/')[2]}",
                           hint=f"see `harness trials --study {ref.partition('/')[0]}`")
    known = [r.name for r in list_runs(ws)]
    raise HarnessError(f"no run named '{ref}'",
                       hint=f"known runs: {listing(known, 10, last=True)}" if known else "train one with `harness train`")


def list_runs(ws) -> list[Run]:
    """The complete runs under ``runs/``, oldest first."""
    if not ws.runs.is_dir():
        return []
    runs = [Run(p) for p in ws.runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted((r for r in runs if r.is_complete), key=lambda r: r.path.stat().st_mtime)
