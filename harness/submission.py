"""Submission CSV files: write them safely, read them back strictly; the report of scoring one.

A submission is a two-column CSV (default header ``ID,Answer``), UTF-8 without BOM, quoted per
RFC 4180 by the ``csv`` module so answers may hold commas, quotes and newlines. Reading never
goes through pandas: an answer "NA", "null" or "" stays exactly that string. Scoring a file is the
task's (``task.score_file``: EM/F1, accuracy/MCC/...); what every score shares -- the figures and
what did not line up between the two sides -- is a :class:`ScoreReport`.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.common.errors import HarnessError
from harness.common.io import atomic_write
from harness.scores import metric_label

COMMAS = (",", "\uff0c")  # ASCII and full-width commas, removed by strip_commas=True


def _preview(ids: Sequence[str], k: int = 5) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:k])
    return shown + (f" ... and {len(ids) - k} more" if len(ids) > k else "")


def write_submission(
    path: str | os.PathLike,
    answers: Mapping[str, str],
    ids: Sequence[str],
    id_column: str = "ID",
    answer_column: str = "Answer",
    strip_commas: bool = False,
) -> Path:
    """Write one row per id of ``ids`` (in that order) and return the path.

    An id with no answer gets "". An answer whose id is not in ``ids``, or a repeated id in
    ``ids``, is a :class:`HarnessError`. ``strip_commas`` removes ASCII and full-width commas
    from the answers (what the HW7 sample code did). The file is written to a temporary file
    in the same folder and moved into place, so a reader never sees half a file.
    """
    ids = [str(i) for i in ids]
    answers = {str(k): ("" if v is None else str(v)) for k, v in answers.items()}
    repeated = [i for i, count in Counter(ids).items() if count > 1]
    if repeated:
        raise HarnessError(f"submission ids repeat: {_preview(repeated)}",
                           hint="pass each question id once")
    known = set(ids)
    unknown = [k for k in answers if k not in known]
    if unknown:
        raise HarnessError(
            f"{len(unknown)} answer(s) for ids not in the submission id list: {_preview(unknown)}",
            hint="predict on the same file the ids come from (e.g. the test file)")

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)  # RFC 4180: CRLF rows, quotes only where needed
    writer.writerow([id_column, answer_column])
    for qid in ids:
        answer = answers.get(qid, "")
        if strip_commas:
            for comma in COMMAS:
                answer = answer.replace(comma, "")
        writer.writerow([qid, answer])
    return atomic_write(Path(path), lambda f: f.write(buffer.getvalue().encode("utf-8")))


@dataclass(frozen=True)
class Problem:
    """Something wrong in a submission that does not stop it from being scored."""

    kind: str  # "duplicate" | "empty_id" | "short_row"
    line: int  # 1-based physical line where the row starts
    id: str
    message: str

    def __str__(self) -> str:
        return self.message


def _column(header: list[str], name: str, role: str, path: Path) -> int:
    cleaned = [h.strip() for h in header]
    if name in cleaned:
        return cleaned.index(name)
    folded = [h.casefold() for h in cleaned]
    if name.casefold() in folded:
        return folded.index(name.casefold())
    raise HarnessError(
        f"{path}: no {role} column {name!r}; header found: {','.join(header)}",
        hint=f"rename the column or choose it with {role}_column")


def read_submission(
    path: str | os.PathLike, id_column: str = "ID", answer_column: str = "Answer",
) -> tuple[dict[str, str], list[Problem]]:
    """Read a submission CSV into ``{id: answer}`` plus a list of :class:`Problem`.

    Column names match exactly, else case-insensitively; a missing column is a
    :class:`HarnessError` quoting the header found. A repeated id keeps its first answer and is
    reported as a ``"duplicate"`` problem. Blank lines are skipped; a UTF-8 BOM is tolerated.
    """
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"submission file not found: {path}")
    answers: dict[str, str] = {}
    problems: list[Problem] = []
    line = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise HarnessError(f"{path}: empty file, expected a header {id_column},{answer_column}")
            id_i = _column(header, id_column, "id", path)
            ans_i = _column(header, answer_column, "answer", path)
            line = reader.line_num + 1
            for row in reader:
                if row:
                    _take_row(row, line, id_i, ans_i, answers, problems)
                line = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})",
                           hint="save the CSV as UTF-8") from None
    except csv.Error as e:
        raise HarnessError(f"{path}: malformed CSV near line {line}: {e}") from None
    return answers, problems


def _take_row(row: list[str], line: int, id_i: int, ans_i: int,
              answers: dict[str, str], problems: list[Problem]) -> None:
    qid = row[id_i].strip() if id_i < len(row) else ""
    if not qid:
        problems.append(Problem("empty_id", line, "", f"line {line}: row without an id, skipped"))
        return
    if ans_i >= len(row):
        problems.append(Problem("short_row", line, qid, f"line {line}: id {qid!r} has no answer field"))
    if qid in answers:
        problems.append(Problem("duplicate", line, qid,
                                f"line {line}: id {qid!r} repeated, the first answer is kept"))
        return
    answers[qid] = row[ans_i] if ans_i < len(row) else ""


SHOW_IDS = 10  # ids listed per category by ScoreReport.format()


@dataclass
class ScoreReport:
    """A task's scores of a prediction file (0-100) plus what did not line up between the two sides."""

    scores: dict[str, float]
    n_gold: int
    n_scored: int  # gold examples that had a prediction
    unit: str = "examples"
    missing_ids: list[str] = field(default_factory=list)  # gold ids without a prediction
    extra_ids: list[str] = field(default_factory=list)  # predicted ids not in gold
    duplicate_ids: list[str] = field(default_factory=list)  # ids repeated in the submission
    problems: list[str] = field(default_factory=list)  # other submission problems, one line each
    per_id: dict = field(default_factory=dict, repr=False)

    def __getattr__(self, name):  # report.em, report.accuracy, ...
        scores = self.__dict__.get("scores") or {}
        if name in scores:
            return scores[name]
        raise AttributeError(name)

    def format(self) -> str:
        """The lines the CLI prints, joined with newlines."""
        lines = [f"{metric_label(k):<3} {v:.2f}" for k, v in self.scores.items()]
        lines.append(f"{self.unit}: {self.n_gold} gold, {self.n_scored} with a prediction")
        for label, ids in (("missing predictions", self.missing_ids),
                           ("ids not in gold (ignored)", self.extra_ids),
                           ("duplicate ids (first answer kept)", self.duplicate_ids)):
            if ids:
                lines.append(f"{label}: {len(ids)}: {_first(ids)}")
        if self.problems:
            lines.append(f"other problems: {len(self.problems)}")
            lines.extend(f"  {p}" for p in self.problems[:SHOW_IDS])
            if len(self.problems) > SHOW_IDS:
                lines.append(f"  ... and {len(self.problems) - SHOW_IDS} more")
        return "\n".join(lines)


def _first(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:SHOW_IDS])
    return shown + (f" ... and {len(ids) - SHOW_IDS} more" if len(ids) > SHOW_IDS else "")
