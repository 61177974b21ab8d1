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

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.common.errors import HarnessError

FILENAME = "competition.toml"
LAYOUTS = ("hw7", "squad", "csv", "jsonl", "hf")
TASK_LAYOUTS = {"qa": LAYOUTS, "classification": ("csv", "jsonl", "hf")}
SPLITS = ("train", "dev", "test", "test_gold")
DEFAULT_METRIC = {"qa": "em", "classification": "accuracy"}
METRICS = {"qa": ("em", "f1"),
           "classification": ("accuracy", "f1", "macro_f1", "mcc", "pearson", "spearman", "combined")}
SUBMISSION_COLUMNS = {"qa": ("ID", "Answer"), "classification": ("id", "label")}


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
        """Read and validate one split into ``Example`` objects."""
        location = self.path(split)
        if location is None:
            raise HarnessError(
                f"competition '{self.name}' has no {split} file",
                hint=f"add it under [files] in {self.root / FILENAME}",
            )
        from harness.tasks.base import get_task

        kwargs = dict(self.options)
        if self.layout == "hf":
            kwargs["split"] = split
        return get_task(self.task).read(location, layout=self.layout, **kwargs)

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
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / FILENAME
        tmp = target.with_suffix(".toml.tmp")
        tmp.write_text(self.to_toml(), encoding="utf-8")
        tmp.replace(target)
        return target


def load_competition(path: str | Path | None = None) -> Competition:
    """Read ``competition.toml`` from ``path`` (a file or folder; default: the current folder)."""
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
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise HarnessError(f"{p}: not valid TOML ({e})") from None
    sub = raw.get("submission", {})
    task = raw.get("task", "qa")
    id_default, answer_default = SUBMISSION_COLUMNS.get(task, SUBMISSION_COLUMNS["qa"])
    comp = Competition(
        name=raw.get("name", p.parent.name), root=p.parent.resolve(), files=dict(raw.get("files", {})),
        layout=raw.get("layout", "squad"), lang=raw.get("lang", "zh"), task=task,
        metric=raw.get("metric", DEFAULT_METRIC.get(task, "em")), id_column=sub.get("id_column", id_default),
        answer_column=sub.get("answer_column", answer_default), strip_commas=bool(sub.get("strip_commas", False)),
        label_map={str(k): str(v) for k, v in sub.get("label_map", {}).items()},
        options=dict(raw.get("options", {})),
    )
    _check(comp, p)
    return comp


def _check(comp: Competition, source: Path) -> None:
    if comp.task not in TASK_LAYOUTS:
        raise HarnessError(f"{source}: unknown task '{comp.task}'", hint=f"one of {', '.join(TASK_LAYOUTS)}")
    if comp.layout not in TASK_LAYOUTS[comp.task]:
        raise HarnessError(f"{source}: layout '{comp.layout}' does not fit a {comp.task} competition",
                           hint=f"one of {', '.join(TASK_LAYOUTS[comp.task])}")
    if comp.metric not in METRICS[comp.task]:
        raise HarnessError(f"{source}: metric '{comp.metric}' is not a {comp.task} metric",
                           hint=f"one of {', '.join(METRICS[comp.task])}")
    if comp.lang not in ("zh", "en"):
        raise HarnessError(f"{source}: unknown lang '{comp.lang}'", hint="zh or en")
    if "train" not in comp.files:
        raise HarnessError(f"{source}: [files] needs at least a train entry")
    unknown = set(comp.files) - set(SPLITS)
    if unknown:
        raise HarnessError(f"{source}: unknown split(s) {sorted(unknown)} in [files]", hint=f"use {SPLITS}")


def init_competition(name: str, root: str | Path, train: str, dev: str | None = None, test: str | None = None,
                     test_gold: str | None = None, layout: str | None = None, lang: str = "zh",
                     metric: str | None = None, task: str = "qa", options: dict | None = None,
                     **submission) -> Competition:
    """Create (or overwrite) ``competition.toml`` in ``root`` after checking the files exist.

    ``options`` are the reader's options (classification: ``text_column``, ``label_column``...);
    ``submission`` the ``id_column`` / ``answer_column`` / ``strip_commas`` of the CSV.
    """
    root = Path(root).resolve()
    files = {"train": train, "dev": dev, "test": test, "test_gold": test_gold}
    files = {k: v for k, v in files.items() if v}
    if layout is None:
        if task == "classification":
            from harness.tasks.clf.readers import detect_text_layout

            layout = detect_text_layout(train)
        else:
            layout = _guess_layout(train)
    if layout != "hf":
        for split, f in files.items():
            if not Path(f).expanduser().exists():
                raise HarnessError(f"{split} file not found: {f}")
        files = {k: str(Path(v).expanduser().resolve()) for k, v in files.items()}
    id_default, answer_default = SUBMISSION_COLUMNS.get(task, SUBMISSION_COLUMNS["qa"])
    submission = {k: v for k, v in submission.items() if v is not None}
    submission.setdefault("id_column", id_default)
    submission.setdefault("answer_column", answer_default)
    comp = Competition(name=name, root=root, files=files, layout=layout, lang=lang, task=task,
                       metric=metric or DEFAULT_METRIC.get(task, "em"), options=dict(options or {}), **submission)
    _check(comp, root / FILENAME)
    comp.save()
    return comp


def _guess_layout(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json":
        import json

        try:
            keys = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "squad"  # the reader will report the problem with file and position
        return "hw7" if isinstance(keys, dict) and "questions" in keys else "squad"
    return "hf"
