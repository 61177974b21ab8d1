"""Readers for text classification: CSV/TSV, JSON Lines or a Hugging Face data set -> ``TextExample``.

:func:`read_texts` is the one entry point. Layouts:

* ``csv``: ``.csv`` (comma, standard quoting) or ``.tsv`` (tab, no quoting, as GLUE writes it:
  SST-2 has quote characters inside sentences); a header row unless ``columns`` names the columns
  of a header-less file (CoLA's ``in_domain_train.tsv``: ``source,label,mark,sentence``);
* ``jsonl``: one JSON object per line (``.jsonl``/``.ndjson``; ``.json`` holding lines or an array);
* ``hf``: a Hub data set through ``datasets``; GLUE (every config) and Yelp review full know
  their own columns, other names use the column arguments.

Rules shared by every layout: labels are stripped strings, exactly as written ("1.0" stays "1.0",
never normalised), or floats with ``regression=True``; a missing label column, or one blank in
every row, means an unlabelled (test) file, while blanks in only some rows are an error. Ids come
from the id column when there is one, else the 0-based row number. Empty texts, duplicate ids and
missing columns raise :class:`~harness.common.errors.DataError` naming the file, the rows and a fix.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from harness.common.errors import DataError
from harness.tasks.clf.example import TextExample
from harness.tasks.qa.readers import _hf_offline_hint, _load_hf, json_lines

LAYOUTS = ("csv", "tsv", "jsonl", "hf")
_SUFFIX_LAYOUT = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                  ".json": "jsonl"}
_HF_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_INT = re.compile(r"[+-]?\d+")
_SHOW = 5  # offending rows listed in an error message
_COLUMN_HINT = ("name the columns with text_column= / text_pair_column= / label_column= / id_column= "
                "(CLI: --text-column, --text-pair-column, --label-column, --input-id-column); if the file has no "
                "header row, name its columns with columns=\"a,b,c\" (--columns)")
_TEXT_GUESSES = ("text", "sentence", "review", "content", "comment", "body", "sentence1", "question",
                 "premise", "text_a")


@dataclass(frozen=True)
class _Columns:
    """Which column holds what (None: not used)."""

    text: str = "text"
    text_pair: str | None = None
    label: str = "label"
    id: str | None = "id"
    group: str | None = None


@dataclass
class _Table:
    """Rows of one source: ``fields`` in file order, ``lines`` the file line of each row (or None)."""

    source: str
    fields: list[str]
    rows: list[dict]
    lines: list[int] | None = None

    def where(self, i: int) -> str:
        return f"row {i} (line {self.lines[i]})" if self.lines else f"row {i}"


# ---- entry point --------------------------------------------------------------------------------

def read_texts(path_or_name: str | Path, layout: str | None = None, *, text_column: str = "text",
               text_pair_column: str | None = None, label_column: str = "label", id_column: str | None = "id",
               group_column: str | None = None, columns: str | Iterable[str] | None = None,
               header: bool | None = None, regression: bool = False, config: str | None = None,
               split: str = "train", cache_dir: str | None = None) -> list[TextExample]:
    """Read a classification (or regression) data set; see the module docstring for the rules.

    ``layout`` is guessed when None: from the suffix, else ``hf`` for a path that does not exist
    and looks like a data set name ("glue", "Yelp/yelp_review_full"). ``columns`` names the columns
    of a header-less CSV/TSV (a list or a comma string); ``header=None`` means "a header row unless
    ``columns`` is given" (``header=True`` with ``columns`` skips the file's header and renames).
    ``config``/``split``/``cache_dir`` are for ``hf`` ("dev" means the validation split).
    """
    cols = _Columns(text_column, text_pair_column, label_column, id_column, group_column)
    layout = _check_layout(layout) or detect_text_layout(path_or_name)
    if layout == "hf":
        table, cols, regression = _hf_table(str(path_or_name), config, split, cache_dir, cols, regression)
        return _build(table, cols, regression)
    path = _existing(path_or_name)
    if layout == "jsonl":
        table = _read_jsonl(path)
    else:
        table = _read_delimited(path, _delimiter(path, layout), _column_names(columns), header)
    return _build(table, cols, regression)


def detect_text_layout(path_or_name: str | Path) -> str:
    """``csv`` / ``jsonl`` from the suffix; ``hf`` for a non-existent path that looks like a data set name."""
    path = Path(path_or_name)
    suffix = path.suffix.lower()
    if suffix in _SUFFIX_LAYOUT:
        return _SUFFIX_LAYOUT[suffix]
    if not path.exists() and _HF_NAME.fullmatch(str(path_or_name)):
        return "hf"
    if not path.exists():
        raise DataError(f"data file not found: {path}",
                        hint="check the path; for a Hugging Face data set pass layout='hf' (--layout hf)")
    raise DataError(f"{path}: cannot tell the layout from the suffix {suffix!r}",
                    hint="use .csv, .tsv or .jsonl, or pass layout='csv'|'tsv'|'jsonl' (--layout)")


def label_set(examples: Iterable[TextExample]) -> list[str]:
    """Sorted distinct labels of the labelled examples: numerically when all are integers, else as text."""
    labels = {e.label for e in examples if e.label is not None}
    if any(not isinstance(label, str) for label in labels):
        raise DataError("label_set needs class labels (strings); these examples have numeric (regression) labels",
                        hint="read the data with regression=False for classification")
    if all(_INT.fullmatch(label) for label in labels):
        return sorted(labels, key=lambda s: (int(s), s))
    return sorted(labels)


# ---- layout and file helpers ---------------------------------------------------------------------

def _check_layout(layout: str | None) -> str | None:
    if layout is not None and layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}", hint=f"one of {', '.join(LAYOUTS)}")
    return layout


def _existing(path_or_name: str | Path) -> Path:
    path = Path(path_or_name)
    if not path.is_file():
        raise DataError(f"data file not found: {path}",
                        hint="check the path (relative paths are taken from the current directory)")
    return path


def _delimiter(path: Path, layout: str) -> str:
    """Tab for ``tsv`` and ``.tsv``; comma for ``.csv``; otherwise a tab in the first line wins."""
    suffix = path.suffix.lower()
    if layout == "tsv" or suffix == ".tsv":
        return "\t"
    if suffix == ".csv":
        return ","
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        return "\t" if "\t" in f.readline() else ","


def _column_names(columns: str | Iterable[str] | None) -> list[str] | None:
    if columns is None:
        return None
    names = [c.strip() for c in (columns.split(",") if isinstance(columns, str) else columns)]
    if not names or any(not n for n in names):
        raise DataError(f"columns={columns!r}: every column needs a name",
                        hint='e.g. columns="source,label,mark,sentence"')
    return names


def _open_text(path: Path):
    """UTF-8 (a BOM is dropped); the csv module wants ``newline=""``."""
    return path.open(encoding="utf-8-sig", newline="")


def _not_utf8(path: Path, e: UnicodeDecodeError) -> DataError:
    return DataError(f"{path}: not UTF-8 text (byte {e.start} of a chunk: {e.reason})",
                     hint="save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")


# ---- CSV / TSV ------------------------------------------------------------------------------------

def _read_delimited(path: Path, sep: str, names: list[str] | None, header: bool | None) -> _Table:
    """Rows of a CSV (standard quoting) or TSV (no quoting); blank lines are skipped."""
    records = _csv_records(path, sep)
    if header is None:
        header = names is None
    if header:
        if not records:
            raise DataError(f"{path}: empty file", hint="expected a header row and data rows")
        first = [c.strip() for c in records.pop(0)[1]]
        names = names or [c or f"column{k}" for k, c in enumerate(first)]
    elif names is None:
        names = [str(k) for k in range(max((len(r) for _, r in records), default=0))]
    _check_unique_names(path, names)
    rows, lines, bad = [], [], []
    for line, cells in records:
        if len(cells) > len(names) and not any(c.strip() for c in cells[len(names):]):
            cells = cells[:len(names)]  # trailing empty cells (a stray delimiter at the end)
        if len(cells) != len(names):
            bad.append(f"line {line}: {len(cells)}")
            continue
        rows.append(dict(zip(names, cells)))
        lines.append(line)
    if bad:
        raise DataError(f"{path}: {len(bad)} row(s) do not have {len(names)} fields ({', '.join(names)}): "
                        f"{'; '.join(bad[:_SHOW])}{' ...' if len(bad) > _SHOW else ''}",
                        hint=_field_count_hint(sep))
    return _Table(str(path), names, rows, lines)


def _csv_records(path: Path, sep: str) -> list[tuple[int, list[str]]]:
    """(first line number, cells) of every non-blank record."""
    _raise_field_limit()
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    out, line = [], 1
    try:
        with _open_text(path) as f:
            reader = csv.reader(f, delimiter=sep, quoting=quoting)
            for cells in reader:
                if any(c.strip() for c in cells):
                    out.append((line, cells))
                line = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    except csv.Error as e:
        raise DataError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'} near line {line}: {e}",
                        hint=_field_count_hint(sep)) from None
    return out


def _raise_field_limit() -> None:
    """Allow huge cells (the csv default is 128 KiB); sys.maxsize overflows a C long on some systems."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def _field_count_hint(sep: str) -> str:
    if sep == "\t":
        return "a TSV cell may not contain a tab or a newline (quotes are kept as text)"
    return "cells with commas, quotes or newlines must be quoted (\"...\", with inner quotes doubled)"


def _check_unique_names(path: Path, names: list[str]) -> None:
    seen, dups = set(), []
    for n in names:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    if dups:
        raise DataError(f"{path}: duplicate column name(s) {dups} in {names}",
                        hint="rename them in the header, or name all columns with columns=\"a,b,c\" and header=True")


# ---- JSON Lines -----------------------------------------------------------------------------------

def _read_jsonl(path: Path) -> _Table:
    """One object per line (blank lines skipped); a ``.json`` file may also hold one array of objects."""
    try:
        with _open_text(path) as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        return _json_array(path, text)
    rows, lines = json_lines(text, path, hint='each line should look like {"text": "...", "label": "..."}')
    return _Table(str(path), _keys_in_order(rows), rows, lines)


def _json_array(path: Path, text: str) -> _Table:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected an array of JSON objects (one per example)")
    return _Table(str(path), _keys_in_order(data), data)


def _keys_in_order(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


# ---- rows -> examples ------------------------------------------------------------------------------

def _build(table: _Table, cols: _Columns, regression: bool) -> list[TextExample]:
    """Validate the columns and cells of ``table`` and make one ``TextExample`` per row."""
    if not table.rows:
        raise DataError(f"{table.source}: no rows", hint="the file is empty (or has only a header)")
    _check_columns(table, cols)
    texts = _texts(table, cols.text)
    pairs = _texts(table, cols.text_pair) if cols.text_pair else [None] * len(table.rows)
    labels = _labels(table, cols.label, regression)
    ids = _ids(table, cols.id)
    groups = [_cell_text(r.get(cols.group), table, i, cols.group) for i, r in enumerate(table.rows)] \
        if cols.group else [""] * len(table.rows)
    return [TextExample(id=ids[i], text=texts[i], text_pair=pairs[i], label=labels[i], group=groups[i],
                        meta={"row": i}) for i in range(len(table.rows))]


def _check_columns(table: _Table, cols: _Columns) -> None:
    named = [("text", cols.text), ("text pair", cols.text_pair), ("group", cols.group)]
    for role, name in named:
        if name and name not in table.fields:
            raise DataError(f"{table.source}: no {role} column {name!r}; the columns are {table.fields}"
                            f"{_guess(table.fields) if role == 'text' else ''}", hint=_COLUMN_HINT)


def _guess(fields: list[str]) -> str:
    """A did-you-mean for the text column, or a note that the "header" looks like a data row."""
    found = [f for f in _TEXT_GUESSES if f in fields]
    if found:
        return f" (did you mean text_column={found[0]!r}?)"
    if any(_INT.fullmatch(f) or len(f.split()) > 3 for f in fields):
        return " (the first row looks like data: is the file header-less? then pass columns=)"
    return ""


def _texts(table: _Table, column: str) -> list[str]:
    out = [_cell_text(r.get(column), table, i, column) for i, r in enumerate(table.rows)]
    empty = [table.where(i) for i, t in enumerate(out) if not t.strip()]
    if empty:
        raise DataError(f"{table.source}: empty {column!r} in {len(empty)} row(s): {_listing(empty)}",
                        hint="fill in or drop those rows (rows count from 0, after the header)")
    return out


def _cell_text(value: Any, table: _Table, i: int, column: str) -> str:
    """A text/id/group cell: strings as they are, numbers as written, missing -> ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (str, int, float)):
        return str(value)
    raise DataError(f"{table.source}: {table.where(i)}: {column!r} is a {type(value).__name__}, not a single "
                    f"value: {value!r:.80}")


def _labels(table: _Table, column: str, regression: bool) -> list[str | float | None]:
    """Stripped label strings (floats with ``regression``); all None when the column is absent or blank."""
    if column not in table.fields:
        return [None] * len(table.rows)
    raw = [_cell_text(r.get(column), table, i, column).strip() for i, r in enumerate(table.rows)]
    blank = [i for i, v in enumerate(raw) if not v]
    if len(blank) == len(raw):
        return [None] * len(raw)
    if blank:
        raise DataError(f"{table.source}: {len(blank)} of {len(raw)} row(s) have no {column!r} but the others do: "
                        f"{_listing([table.where(i) for i in blank])}",
                        hint="label every row (a test file leaves the label column out or blank in every row)")
    return [_to_float(v, table, i, column) for i, v in enumerate(raw)] if regression else raw


def _to_float(value: str, table: _Table, i: int, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"{table.source}: {table.where(i)}: {column!r} value {value!r} is not a finite number",
                        hint="regression labels must be numbers; read with regression=False for class labels")
    return number


def _ids(table: _Table, column: str | None) -> list[str]:
    """The id column (stripped) when the table has it, else the row numbers; blanks and repeats are errors."""
    if not column or column not in table.fields:
        return [str(i) for i in range(len(table.rows))]
    ids = [_cell_text(r.get(column), table, i, column).strip() for i, r in enumerate(table.rows)]
    blank = [table.where(i) for i, v in enumerate(ids) if not v]
    if blank:
        raise DataError(f"{table.source}: empty {column!r} (id) in {len(blank)} row(s): {_listing(blank)}",
                        hint="give every row an id, or use id_column=None for row numbers")
    first: dict[str, int] = {}
    dups: dict[str, list[int]] = {}
    for i, v in enumerate(ids):
        if v in first:
            dups.setdefault(v, [first[v]]).append(i)
        else:
            first[v] = i
    if dups:
        shown = [f"{v!r} ({', '.join(table.where(i) for i in rows[:3])})" for v, rows in list(dups.items())[:_SHOW]]
        raise DataError(f"{table.source}: {len(dups)} duplicate id(s) in {column!r}: {'; '.join(shown)}"
                        f"{' ...' if len(dups) > _SHOW else ''}",
                        hint="ids must be unique (submissions are keyed by id); use id_column=None for row numbers")
    return ids


def _listing(items: list[str]) -> str:
    return ", ".join(items[:_SHOW]) + (f" ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")


# ---- Hugging Face -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _HFSpec:
    """Columns of a known Hub data set; ``regression`` for STS-B."""

    text: str
    text_pair: str | None = None
    label: str = "label"
    id: str | None = "idx"
    regression: bool = False


_GLUE = {
    "cola": _HFSpec("sentence"), "sst2": _HFSpec("sentence"),
    "mrpc": _HFSpec("sentence1", "sentence2"), "rte": _HFSpec("sentence1", "sentence2"),
    "wnli": _HFSpec("sentence1", "sentence2"), "stsb": _HFSpec("sentence1", "sentence2", regression=True),
    "qqp": _HFSpec("question1", "question2"), "qnli": _HFSpec("question", "sentence"),
    "mnli": _HFSpec("premise", "hypothesis"), "mnli_matched": _HFSpec("premise", "hypothesis"),
    "mnli_mismatched": _HFSpec("premise", "hypothesis"), "ax": _HFSpec("premise", "hypothesis"),
}
_GLUE_NAMES = ("glue", "nyu-mll/glue")
_YELP_NAMES = ("Yelp/yelp_review_full", "yelp_review_full")
_YELP = _HFSpec("text", id=None)
_DEFAULTS = _Columns()


def _hf_spec(name: str, config: str | None) -> _HFSpec | None:
    """The known columns of ``name``/``config``, None for an unknown data set; bad GLUE configs fail here."""
    if name in _GLUE_NAMES:
        if config not in _GLUE:
            raise DataError(f"Hugging Face data set '{name}' needs a config: one of {', '.join(_GLUE)}"
                            f"{f' (got {config!r})' if config else ''}", hint="pass config='sst2' (--config sst2)")
        return _GLUE[config]
    if name in _YELP_NAMES:
        return _YELP
    return None


def hf_split(name: str, config: str | None, split: str) -> str:
    """The Hub split for ``split``: "dev" -> "validation" (GLUE ``mnli``: the matched split).

    GLUE's ``mnli`` config has ``validation_matched``/``validation_mismatched`` and
    ``test_matched``/``test_mismatched`` ("dev_mismatched" reaches the former); its ``mnli_matched``
    and ``mnli_mismatched`` configs hold only ``validation`` and ``test``.
    """
    split = {"dev": "validation"}.get(split, split)
    if name in _GLUE_NAMES and config == "mnli":
        split = {"validation": "validation_matched", "test": "test_matched",
                 "dev_mismatched": "validation_mismatched"}.get(split, split)
    return split


def _hf_columns(spec: _HFSpec | None, cols: _Columns) -> _Columns:
    """The data set's own columns, except where the caller named non-default ones."""
    if spec is None:
        return cols
    own = _Columns(spec.text, spec.text_pair, spec.label, spec.id, cols.group)
    changed = {k: getattr(cols, k) for k in ("text", "text_pair", "label", "id")
               if getattr(cols, k) != getattr(_DEFAULTS, k)}
    return replace(own, **changed)


def _hf_table(name: str, config: str | None, split: str, cache_dir: str | None, cols: _Columns,
              regression: bool) -> tuple[_Table, _Columns, bool]:
    """(table, columns, regression) of a Hub data set; class id -1 (GLUE's test labels) -> unlabelled."""
    spec = _hf_spec(name, config)
    cols = _hf_columns(spec, cols)
    regression = regression or bool(spec and spec.regression)
    real_split = hf_split(name, config, split)
    ds = _load_hf_clf(name, real_split, config, cache_dir)
    needed = [c for c in (cols.text, cols.text_pair, cols.label, cols.id, cols.group) if c and c in ds.column_names]
    data = {c: list(ds[c]) for c in needed}
    rows = [dict(zip(needed, values)) for values in zip(*(data[c] for c in needed))] if needed else []
    if _minus_one_is_missing(ds, cols.label, spec):
        for r in rows:  # class ids stay digits ("0", "1"), as GLUE submissions want them
            if r.get(cols.label) == -1:
                r[cols.label] = None
    source = f"{name}{f'/{config}' if config else ''} ({real_split})"
    return _Table(source, list(ds.column_names), rows), cols, regression


def _minus_one_is_missing(ds, label: str, spec: _HFSpec | None) -> bool:
    """True for a ClassLabel column (its "no label" value is -1) and for the known data sets."""
    import datasets

    feature = ds.features.get(label) if label in ds.column_names else None
    return spec is not None or isinstance(feature, datasets.ClassLabel)


def _load_hf_clf(name: str, split: str, config: str | None, cache_dir: str | None):
    """``harness.tasks.qa.readers._load_hf`` with a classification hint when the set is not in the cache."""
    try:
        return _load_hf(name, split, config, cache_dir)
    except DataError as e:
        if e.hint != _hf_offline_hint(name):
            raise
        raise DataError(e.message, hint=_clf_offline_hint(name, config, split)) from None


def _clf_offline_hint(name: str, config: str | None, split: str) -> str:
    cfg = f", '{config}'" if config else ""
    return (f"read a local file instead (CSV/TSV/JSONL path, e.g. GLUE's SST-2/dev.tsv, or a header-less "
            f"CoLA .tsv with --columns source,label,mark,sentence --text-column sentence); or point HF_HOME / "
            f"HF_DATASETS_CACHE at a cache that already holds it and set HF_DATASETS_OFFLINE=1; to fill the "
            f"cache, run once with network access: python -c \"import datasets; "
            f"datasets.load_dataset('{name}'{cfg}, split='{split}')\"")
