"""A competition, declared once in ``competition.toml`` so that no command needs data flags.

The file lives in the workspace folder (the current directory by default) and names the train,
dev and test files, their layout and language, the metric and the submission columns::

    name = "hw7"
    task = "qa"
    layout = "hw7"
    lang = "zh"
    metric = "em"

    [files]
    train = "/data/hw7_train.json"
    dev = "/data/hw7_dev.json"
    test = "/data/hw7_test.json"

    [submission]
    id_column = "ID"
    answer_column = "Answer"
    strip_commas = false

Relative file paths are read relative to the TOML file's folder.

A text-classification (or regression) competition says ``task = "classification"``, reads CSV,
TSV, JSONL or a Hugging Face dataset, names its columns under ``[options]`` and writes
``id,label`` submissions::

    name = "cola"
    task = "classification"
    layout = "csv"
    lang = "en"
    metric = "mcc"

    [files]
    train = "in_domain_train.tsv"
    dev = "in_domain_dev.tsv"

    [submission]
    id_column = "id"
    answer_column = "label"

    # [submission.label_map] (optional) renames the data's labels in the CSV only, e.g. for MNLI
    # read from the Hub: "0" = "entailment", "1" = "neutral", "2" = "contradiction"

    [options]
    columns = "source,label,mark,sentence"   # header-less file
    text_column = "sentence"
    label_column = "label"

Other options: ``text_pair_column`` (sentence pairs), ``id_column`` (the input's id column),
``group_column`` (grouped folds), ``regression = true`` (numeric labels, e.g. STS-B), ``config``
(the Hugging Face dataset config, e.g. ``config = "sst2"`` with ``train = "glue"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from harness.common.errors import HarnessError
from harness.common.io import atomic_write_text
from harness.common.names import unknown_hint
from harness.tasks.base import get_task

FILENAME = "competition.toml"
SPLITS = ("train", "dev", "test", "test_gold")
LANGS = ("zh", "en")
_TOP_KEYS = ("name", "task", "layout", "lang", "metric", "files", "submission", "options")
_SUBMISSION_KEYS = ("id_column", "answer_column", "strip_commas", "label_map")


@dataclass
class Competition:
    name: str
    root: Path  # the workspace folder (where competition.toml lives)
    files: dict[str, str]  # split -> path (or HF dataset name for layout "hf")
    layout: str = "squad"
    lang: str = "zh"
    task: str = "qa"
    metric: str = "em"
    id_column: str = "ID"
    answer_column: str = "Answer"
    strip_commas: bool = False
    label_map: dict = field(default_factory=dict)  # classification: data label -> label written in the CSV
    options: dict = field(default_factory=dict)  # reader options (column names, hf config)

    @property
    def kind(self):
        """The task object of this competition (:mod:`harness.tasks.base`)."""
        return get_task(self.task)

    def path(self, split: str) -> str | None:
        """Resolved location of a split, or None when the competition has no such split."""
        value = self.files.get(split)
        if not value:
            return None
        if self.layout == "hf":
            return value
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (self.root / p))

    def examples(self, split: str):
        """Read and validate one split into the task's example objects."""
        location = self.path(split)
        if location is None:
            raise HarnessError(
                f"competition '{self.name}' has no {split} file",
                hint=f"add it under [files] in {self.root / FILENAME}",
            )
        kwargs = dict(self.options)
        if self.layout == "hf":
            kwargs["split"] = split
        return self.kind.read(location, layout=self.layout, **kwargs)

    def to_toml(self) -> str:
        def q(v) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, (int, float)):
                return repr(v)
            return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [f"name = {q(self.name)}", f"task = {q(self.task)}", f"layout = {q(self.layout)}",
                 f"lang = {q(self.lang)}", f"metric = {q(self.metric)}", "", "[files]"]
        lines += [f"{k} = {q(v)}" for k, v in self.files.items() if v]
        lines += ["", "[submission]", f"id_column = {q(self.id_column)}",
                  f"answer_column = {q(self.answer_column)}", f"strip_commas = {q(self.strip_commas)}"]
        if self.label_map:
            lines += ["", "[submission.label_map]"] + [f"{q(k)} = {q(v)}" for k, v in self.label_map.items()]
        if self.options:
            lines += ["", "[options]"] + [f"{k} = {q(v)}" for k, v in self.options.items()]
        return "\n".join(lines) + "\n"

    def save(self) -> Path:
        return atomic_write_text(self.root / FILENAME, self.to_toml())


def _expect(value, kind: type, what: str, source) -> None:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise HarnessError(f"{source}: {what} = {value!r} must be {'true or false' if kind is bool else 'a string'}")


def _table(raw: dict, key: str, source) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise HarnessError(f"{source}: [{key}] must be a table, got {value!r}")
    return value


def load_competition(path: str | Path | None = None) -> Competition:
    """Read ``competition.toml`` from ``path`` (a file or folder; default: the current folder), every
    key and value checked (one line naming the key and what is allowed)."""
    p = Path(path) if path else Path.cwd()
    if p.is_dir():
        p = p / FILENAME
    if not p.exists():
        raise HarnessError(
            f"no competition found: {p} does not exist",
            hint="run `harness init NAME --train F --dev F --test F` here, `harness demo` for the "
                 "built-in one, or pass --competition PATH",
        )
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{p}: not valid TOML ({e})") from None
    except OSError as e:
        raise HarnessError(f"{p}: cannot be read ({e.strerror})") from None
    for key in raw:
        if key not in _TOP_KEYS:
            raise HarnessError(f"{p}: unknown key '{key}'", hint=unknown_hint(key, _TOP_KEYS, "keys"))
    for key in ("name", "task", "layout", "lang", "metric"):
        if key in raw:
            _expect(raw[key], str, key, p)
    files, sub, options = _table(raw, "files", p), _table(raw, "submission", p), _table(raw, "options", p)
    for split, value in files.items():
        if split not in SPLITS:
            raise HarnessError(f"{p}: unknown split '{split}' in [files]", hint=f"use {', '.join(SPLITS)}")
        _expect(value, str, f"[files] {split}", p)
    for key, value in sub.items():
        if key not in _SUBMISSION_KEYS:
            raise HarnessError(f"{p}: unknown key '{key}' in [submission]",
                               hint=unknown_hint(key, _SUBMISSION_KEYS, "keys"))
        if key in ("id_column", "answer_column"):
            _expect(value, str, f"[submission] {key}", p)
        elif key == "strip_commas":
            _expect(value, bool, f"[submission] {key}", p)
        elif not isinstance(value, dict):
            raise HarnessError(f"{p}: [submission.label_map] must be a table of label = name")
    task = get_task(raw.get("task", "qa"))
    for key in options:
        if key not in task.read_options:
            raise HarnessError(f"{p}: unknown key '{key}' in [options] of a {task.kind} competition",
                               hint=unknown_hint(key, task.read_options, "options"))
    id_default, answer_default = task.submission_columns
    comp = Competition(
        name=raw.get("name", p.parent.name), root=p.parent.resolve(), files=dict(files),
        layout=raw.get("layout", task.layouts[0]), lang=raw.get("lang", "zh"),
        task=task.kind, metric=raw.get("metric", task.default_metric), id_column=sub.get("id_column", id_default),
        answer_column=sub.get("answer_column", answer_default), strip_commas=bool(sub.get("strip_commas", False)),
        label_map={str(k): str(v) for k, v in sub.get("label_map", {}).items()}, options=dict(options),
    )
    _check(comp, p)
    return comp


def _check(comp: Competition, source: Path) -> None:
    task = comp.kind
    if comp.layout not in task.layouts:
        raise HarnessError(f"{source}: layout '{comp.layout}' does not fit a {comp.task} competition",
                           hint=f"one of {', '.join(task.layouts)}")
    if comp.metric not in task.metric_names:
        raise HarnessError(f"{source}: metric '{comp.metric}' is not a {comp.task} metric",
                           hint=f"one of {', '.join(task.metric_names)}")
    if comp.lang not in LANGS:
        raise HarnessError(f"{source}: unknown lang '{comp.lang}'", hint=" or ".join(LANGS))
    if "train" not in comp.files:
        raise HarnessError(f"{source}: [files] needs at least a train entry")


def init_competition(name: str, root: str | Path, train: str, dev: str | None = None, test: str | None = None,
                     test_gold: str | None = None, layout: str | None = None, lang: str | None = None,
                     metric: str | None = None, task: str = "qa", options: dict | None = None,
                     echo=None, **submission) -> Competition:
    """Create (or overwrite) ``competition.toml`` in ``root`` -- only after every split was read and
    validated, so a failed init leaves an existing file as it was.

    ``lang`` None: detected from the training text (the share of CJK characters), and said through
    ``echo``. ``options`` are the reader's options (classification: ``text_column``, ...);
    ``submission`` the ``id_column`` / ``answer_column`` / ``strip_commas`` of the CSV.
    Returns the competition; ``comp.counts`` holds each split's example count.
    """
    from harness.common.lang import detect_language
    from harness.common.names import check_name

    check_name(name)
    kind = get_task(task)
    for key in options or {}:
        if key not in kind.read_options:
            from harness.tasks.base import task_kinds

            flag = {"id_column": "input-id-column", "config": "hf-config"}.get(key, key.replace("_", "-"))
            owner = next((k for k in task_kinds() if key in get_task(k).read_options), None)
            if owner:
                raise HarnessError(f"--{flag} is a {owner} option", hint=f"pass --task {owner}")
            raise HarnessError(f"--{flag} is not an option of a {kind.kind} competition")
    root = Path(root).resolve()
    files = {k: v for k, v in {"train": train, "dev": dev, "test": test, "test_gold": test_gold}.items() if v}
    if layout != "hf":
        for split, f in files.items():
            if Path(f).suffix and not Path(f).expanduser().exists():
                raise HarnessError(f"{split} file not found: {f}")
    if layout is None:
        layout = kind.detect_layout(train)
    if layout != "hf":
        for split, f in files.items():
            if not Path(f).expanduser().exists():
                raise HarnessError(f"{split} file not found: {f}")
        files = {k: str(Path(v).expanduser().resolve()) for k, v in files.items()}
    id_default, answer_default = kind.submission_columns
    submission = {k: v for k, v in submission.items() if v is not None}
    submission.setdefault("id_column", id_default)
    submission.setdefault("answer_column", answer_default)
    comp = Competition(name=name, root=root, files=files, layout=layout, lang=lang or "zh", task=kind.kind,
                       metric=metric or kind.default_metric, options=dict(options or {}), **submission)
    _check(comp, root / FILENAME)
    counts = {split: len(comp.examples(split)) for split in ("train", "dev", "test") if comp.path(split)}
    if comp.path("test_gold"):
        comp.examples("test_gold")
    if counts["train"] == 0:
        raise HarnessError(f"the train file {train} holds no examples")
    if lang is None:
        comp.lang, share = detect_language(kind.texts(comp.examples("train")[:2000]))
        if echo:
            echo(f"language: {comp.lang} ({100 * share:.0f}% of the letters are CJK; pass --lang to choose)")
    comp.save()
    comp.counts = counts
    return comp
