"""Readers: raw competition files -> ``Example`` lists (one function per layout).

Layouts:

* ``hw7``: ML2023 HW7 ``{"questions": [...], "paragraphs": [...]}`` (:func:`read_hw7`);
* ``squad``: SQuAD v1.1/v2.0, also DRCD and CMRC2018 (:func:`read_squad`);
* ``csv`` / ``jsonl``: one row per question (:func:`read_table`);
* ``hf``: a Hugging Face Hub data set through ``datasets`` (:func:`read_hf`).

:func:`read_examples` picks the layout (given or detected from the file) and validates the result
(:func:`harness.tasks.qa.validate.validate_examples`). Every reader returns string ids and raises
:class:`~harness.common.errors.DataError` with the file name and a hint for anything it cannot read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterable

from harness.common.errors import DataError
from harness.common.hub import hub_reachable, offline_mode
from harness.tasks.qa.example import Example

log = logging.getLogger(__name__)

LAYOUTS = ("hw7", "squad", "csv", "jsonl", "hf")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}
_LAYOUT_HINT = "pass --layout hw7|squad|csv|jsonl|hf (or layout=...) to say which layout the file has"


# ---- shared helpers -------------------------------------------------------------------------

def _load_json(path: str | Path) -> Any:
    """Parse a JSON file; missing file or bad JSON -> DataError naming the file and position."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}",
                        hint="check the path (relative paths are taken from the current directory)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})", hint="save the file as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                        hint="fix the file there (a JSON validator shows the context)") from None


def _keys_error(path, found: Iterable[str], expected: str, layout: str) -> DataError:
    found = sorted(str(k) for k in found)
    return DataError(
        f"{path}: does not look like the {layout} layout: expected {expected}, "
        f"found keys {found[:10]}{' ...' if len(found) > 10 else ''}",
        hint=_LAYOUT_HINT)


def _require(obj: Any, keys: tuple[str, ...], where: str, path) -> None:
    """DataError when ``obj`` is not a dict holding every key of ``keys``."""
    if not isinstance(obj, dict):
        raise DataError(f"{path}: {where} should be a JSON object, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise DataError(f"{path}: {where} lacks {', '.join(map(repr, missing))} "
                        f"(has {sorted(obj)})", hint=f"each {where.rsplit(' #', 1)[0].split()[-1]} needs "
                                                     f"{', '.join(keys)}; is the layout right? ({_LAYOUT_HINT})")


class _ContextGroups:
    """Group ids "articleIndex-paragraphIndex" for flat rows: one per distinct (title, context)."""

    def __init__(self) -> None:
        self._articles: dict[str, int] = {}
        self._paragraphs: dict[tuple[int, str], str] = {}
        self._count: dict[int, int] = {}

    def __call__(self, context: str, title: str = "") -> str:
        a = self._articles.setdefault(title, len(self._articles))
        key = (a, context)
        if key not in self._paragraphs:
            p = self._count.get(a, 0)
            self._count[a] = p + 1
            self._paragraphs[key] = f"{a}-{p}"
        return self._paragraphs[key]


# ---- HW7 --------------------------------------------------------------------------------------

_HW7_Q_KEYS = ("id", "paragraph_id", "question_text")


def read_hw7(path: str | Path) -> list[Example]:
    """ML2023 HW7 layout; group = paragraph id; null answer fields -> ``labelled=False``.

    ``answer_end`` is inclusive and must equal ``answer_start + len(answer_text) - 1``.
    """
    data = _load_json(path)
    if not isinstance(data, dict) or not {"questions", "paragraphs"} <= set(data):
        raise _keys_error(path, data if isinstance(data, dict) else [], '"questions" and "paragraphs"', "hw7")
    paragraphs = data["paragraphs"]
    if not isinstance(paragraphs, list) or not isinstance(data["questions"], list):
        raise DataError(f'{path}: "questions" and "paragraphs" should both be lists')
    out, bad_end = [], []
    for i, q in enumerate(data["questions"]):
        _require(q, _HW7_Q_KEYS, f"question #{i}", path)
        out.append(_hw7_example(q, paragraphs, path, bad_end))
    if bad_end:
        raise DataError(
            f"{path}: answer_end disagrees with answer_start + len(answer_text) - 1 for {len(bad_end)} "
            f"question(s), ids {', '.join(bad_end[:5])}{' ...' if len(bad_end) > 5 else ''}",
            hint="HW7's answer_end is inclusive; fix or drop the answer_end field")
    return out


def _hw7_example(q: dict, paragraphs: list, path, bad_end: list[str]) -> Example:
    pid = q["paragraph_id"]
    if not isinstance(pid, int) or not 0 <= pid < len(paragraphs):
        raise DataError(f"{path}: question {q['id']} has paragraph_id {pid!r}, "
                        f"but there are {len(paragraphs)} paragraphs (0-based)")
    text, start = q.get("answer_text"), q.get("answer_start")
    labelled = text is not None
    if labelled:
        if not isinstance(start, int):
            raise DataError(f"{path}: question {q['id']} has answer_text but answer_start is {start!r}")
        end = q.get("answer_end")
        if end is not None and end != start + len(text) - 1:
            bad_end.append(str(q["id"]))
    return Example(
        id=str(q["id"]), question=str(q["question_text"]), context=paragraphs[pid],
        answers=(str(text),) if labelled else (), answer_starts=(start,) if labelled else (),
        group=str(pid), labelled=labelled,
    )


# ---- SQuAD ------------------------------------------------------------------------------------

def read_squad(path: str | Path) -> list[Example]:
    """SQuAD v1.1/v2.0 layout (also DRCD and CMRC2018).

    Group = the paragraph's ``id`` when it has one (DRCD, CMRC2018), else
    ``"articleIndex-paragraphIndex"``; ``meta["title"]`` keeps the article title. v2.0
    ``is_impossible`` questions are labelled with no answers (``plausible_answers`` is ignored);
    questions with no ``answers`` key at all (a test split) are ``labelled=False``.
    """
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise _keys_error(path, data if isinstance(data, dict) else [], 'a "data" list of articles', "squad")
    out = []
    for a_i, article in enumerate(data["data"]):
        _require(article, ("paragraphs",), f"article #{a_i}", path)
        title = str(article.get("title", ""))
        for p_i, para in enumerate(article["paragraphs"]):
            _require(para, ("context", "qas"), f"article #{a_i} paragraph #{p_i}", path)
            group = str(para.get("id", f"{a_i}-{p_i}"))
            for q_i, qa in enumerate(para["qas"]):
                _require(qa, ("id", "question"), f"article #{a_i} paragraph #{p_i} question #{q_i}", path)
                out.append(_squad_example(qa, para["context"], group, title, path))
    return out


def _squad_example(qa: dict, context: str, group: str, title: str, path) -> Example:
    labelled = "answers" in qa
    answers = [] if qa.get("is_impossible") else (qa.get("answers") or [])
    try:
        texts = tuple(str(a["text"]) for a in answers)
        starts = tuple(int(a["answer_start"]) for a in answers)
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: question {qa['id']}: every answer needs \"text\" and an integer "
                        f"\"answer_start\", got {answers!r:.200}") from None
    return Example(id=str(qa["id"]), question=str(qa["question"]), context=str(context),
                   answers=texts, answer_starts=starts, group=group, labelled=labelled,
                   meta={"title": title})


# ---- CSV / TSV / JSONL ------------------------------------------------------------------------

def read_table(path: str | Path, id_col: str = "id", question_col: str = "question",
               context_col: str = "context", answer_col: str = "answer",
               answer_start_col: str = "answer_start", group_col: str | None = None) -> list[Example]:
    """One question per row: CSV/TSV (by extension) or JSON Lines.

    Answer columns are optional: without ``answer_col`` (and no SQuAD-style ``answers`` column)
    every row is ``labelled=False``; so is a file whose answer column is blank in every row. A blank
    answer in some rows means "no answer" (SQuAD v2 style). An ``answers`` column holding
    ``{"text": [...], "answer_start": [...]}`` (a JSON string in CSV) gives several references.
    Without ``answer_start_col`` the first occurrence of the answer in the context is used. Group =
    ``group_col`` when given, else one group per distinct context.
    """
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows", hint="the file is empty (or has only a header)")
    cols = set().union(*(r.keys() for r in rows[:100]))
    missing = [c for c in (id_col, question_col, context_col, group_col) if c and c not in cols]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {sorted(cols)}",
                        hint="name the columns with id_col=/question_col=/context_col=/... "
                             "(CLI: --id-col, --question-col, ...)")
    use_answers = "answers" in cols and answer_col not in cols
    has_labels = use_answers or (answer_col in cols and any(not _blank(r.get(answer_col)) for r in rows))
    groups = _ContextGroups()
    out = []
    for i, r in enumerate(rows):
        context = _cell_str(r.get(context_col))
        if not has_labels:
            texts, starts = (), ()
        elif use_answers:
            texts, starts = _parse_answers_cell(r.get("answers"), context, path, i)
        else:
            texts, starts = _plain_answer(r, answer_col, answer_start_col, context, path, i)
        group = _cell_str(r.get(group_col)) if group_col else groups(context)
        out.append(Example(id=_cell_str(r.get(id_col)), question=_cell_str(r.get(question_col)),
                           context=context, answers=texts, answer_starts=starts, group=group,
                           labelled=has_labels, meta={"row": i}))
    return out


def _read_rows(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}", hint="check the path")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: unknown table extension {suffix!r}",
                        hint="use .csv, .tsv or .jsonl, or pass the layout explicitly")
    if TABLE_SUFFIXES[suffix] is None:
        return _read_jsonl(path)
    return _read_csv(path, TABLE_SUFFIXES[suffix])


def _read_csv(path: Path, sep: str) -> list[dict]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {e}",
                        hint="cells with commas, quotes or newlines must be quoted (\"...\", quotes doubled)"
                        ) from None
    return frame.to_dict("records")


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig") as f:
        return json_lines(f.read(), path)[0]


def json_lines(text: str, source, hint: str = "each line should hold one JSON object") -> tuple[list[dict], list[int]]:
    """The objects of a JSON Lines text and their 1-based line numbers (blank lines skipped);
    a bad line is a DataError naming ``source`` and the line."""
    rows, lines = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{source}: invalid JSON at line {n}, column {e.colno}: {e.msg}",
                            hint="JSON Lines needs one complete JSON object per line") from None
        if not isinstance(row, dict):
            raise DataError(f"{source}: line {n} is a JSON {type(row).__name__}, not an object", hint=hint)
        rows.append(row)
        lines.append(n)
    return rows, lines


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    return isinstance(value, str) and value.strip() == ""


def _cell_str(value: Any) -> str:
    """A cell as text: ints stay digits (JSONL ids), None/NaN -> ""."""
    return "" if _blank(value) else str(value)


def _plain_answer(row: dict, answer_col: str, start_col: str, context: str, path, i: int):
    """``answer``/``answer_start`` cells (scalars or lists) -> (texts, starts)."""
    text = row.get(answer_col)
    if _blank(text):
        return (), ()
    texts = [str(t) for t in text] if isinstance(text, list) else [str(text)]
    start = row.get(start_col)
    if _blank(start):
        return tuple(texts), tuple(context.find(t) for t in texts)
    raw = start if isinstance(start, list) else [start]
    try:
        starts = [int(float(s)) for s in raw]
    except (TypeError, ValueError):
        raise DataError(f"{path}: row {i}: {start_col} {start!r} is not an integer") from None
    if len(starts) != len(texts):
        raise DataError(f"{path}: row {i}: {len(texts)} answers but {len(starts)} starts")
    return tuple(texts), tuple(starts)


def _parse_answers_cell(cell: Any, context: str, path, i: int):
    """SQuAD/HF ``answers``: {"text": [...], "answer_start": [...]} or [{"text", "answer_start"}]."""
    if isinstance(cell, str):
        if not cell.strip():
            return (), ()
        try:
            cell = json.loads(cell)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: row {i}: the answers cell is not JSON ({e.msg})",
                            hint='expected {"text": [...], "answer_start": [...]}') from None
    if cell is None:
        return (), ()
    if isinstance(cell, dict):
        texts, starts = list(cell.get("text") or []), list(cell.get("answer_start") or [])
    elif isinstance(cell, list):
        texts = [a.get("text") for a in cell if isinstance(a, dict)]
        starts = [a.get("answer_start") for a in cell if isinstance(a, dict)]
    else:
        raise DataError(f"{path}: row {i}: cannot read answers {cell!r:.100}")
    if len(texts) != len(starts) or any(s is None for s in starts):
        raise DataError(f"{path}: row {i}: answers need one answer_start per text, got {cell!r:.200}")
    return tuple(str(t) for t in texts), tuple(int(s) for s in starts)


# ---- Hugging Face Hub ---------------------------------------------------------------------------

def read_hf(name: str, split: str, config: str | None = None, cache_dir: str | None = None) -> list[Example]:
    """A Hub data set with SQuAD columns (id, title, context, question, answers).

    Offline (``HF_HUB_OFFLINE=1``, or the Hub unreachable) only the local ``datasets`` cache is
    used, and a data set that is not there fails at once with a DataError that says what to do.
    """
    ds = _load_hf(name, split, config, cache_dir)
    cols = set(ds.column_names)
    missing = {"id", "question", "context"} - cols
    if missing:
        raise DataError(f"Hugging Face data set {name} ({split}): missing column(s) {sorted(missing)}; "
                        f"found {sorted(cols)}", hint="export it to JSON/CSV and use read_table with column names")
    groups, out = _ContextGroups(), []
    for i, row in enumerate(ds):
        title = str(row.get("title") or "")
        labelled = "answers" in cols
        texts, starts = _parse_answers_cell(row["answers"], row["context"], name, i) if labelled else ((), ())
        out.append(Example(id=str(row["id"]), question=str(row["question"]), context=str(row["context"]),
                           answers=texts, answer_starts=starts, group=groups(row["context"], title),
                           labelled=labelled, meta={"title": title}))
    return out


def _hf_offline_hint(name: str) -> str:
    return (f"download it once with network access (python -c \"import datasets; "
            f"datasets.load_dataset('{name}')\"), or set HF_HOME / HF_DATASETS_CACHE to a cache that "
            f"already has it, or export it where it is available (dataset.to_json('{name.split('/')[-1]}.jsonl'), "
            f"read with --layout jsonl) or as SQuAD JSON (--layout squad)")


def _load_hf(name: str, split: str, config: str | None, cache_dir: str | None):
    import datasets

    offline = bool(datasets.config.HF_HUB_OFFLINE) or not hub_reachable()
    try:
        with offline_mode(offline):
            return datasets.load_dataset(name, config, split=split, cache_dir=cache_dir)
    except (ConnectionError, FileNotFoundError, OSError) as e:
        why = "offline mode (HF_HUB_OFFLINE) is on" if datasets.config.HF_HUB_OFFLINE else (
            "the Hugging Face Hub is unreachable" if offline else "it could not be loaded")
        raise DataError(f"cannot load Hugging Face data set '{name}'"
                        f"{f' ({config})' if config else ''}: {why} and it is not in the local cache "
                        f"({type(e).__name__}: {str(e)[:200]})", hint=_hf_offline_hint(name)) from None
    except Exception as e:  # unknown split/config, bad name, ...
        raise DataError(f"cannot load Hugging Face data set '{name}' split '{split}': "
                        f"{type(e).__name__}: {str(e)[:300]}",
                        hint="check the name, config and split on the data set's Hub page") from None


# ---- dispatch ---------------------------------------------------------------------------------

def detect_layout(path: str | Path) -> str:
    """``hw7`` / ``squad`` for JSON files (by their keys), ``csv`` / ``jsonl`` by extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if not path.exists():
        raise DataError(f"data file not found: {path}",
                        hint="check the path; for a Hugging Face data set pass layout='hf' (--layout hf)")
    return _json_layout(_load_json(path), path)


def _json_layout(data: Any, path) -> str:
    if isinstance(data, dict) and {"questions", "paragraphs"} <= set(data):
        return "hw7"
    if isinstance(data, dict) and "data" in data:
        return "squad"
    found = list(data) if isinstance(data, dict) else [f"<a JSON {type(data).__name__}>"]
    raise _keys_error(path, found, '"questions"+"paragraphs" (hw7) or "data" (squad)', "hw7 or squad")


def read_examples(path_or_name: str | Path, layout: str | None = None, validate: bool = True,
                  repair: bool = True, warnings: list[str] | None = None, **kw) -> list[Example]:
    """Read any supported layout (detected when ``layout`` is None) and validate the result.

    ``kw`` goes to the reader (column names for ``read_table``; ``split``/``config`` for
    ``read_hf``, whose split defaults to "train"). Validation repairs misplaced answer starts and
    raises DataError for duplicate ids, empty texts or answers missing from their context. Its
    warnings are appended to ``warnings`` when a list is given, else logged.
    """
    if layout is not None and layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}", hint=f"one of {', '.join(LAYOUTS)}")
    layout = layout or detect_layout(path_or_name)
    if layout == "hf":
        examples = read_hf(str(path_or_name), **({"split": "train"} | kw))
    elif layout == "hw7":
        examples = read_hw7(path_or_name)
    elif layout == "squad":
        examples = read_squad(path_or_name)
    else:
        examples = read_table(path_or_name, **kw)
    if not validate:
        return examples
    from harness.tasks.qa.validate import validate_examples

    source = str(path_or_name)
    examples, found = validate_examples(examples, source=source, repair=repair)
    if warnings is not None:
        warnings.extend(found)
    else:
        for w in found:
            log.warning(w)
    return examples
