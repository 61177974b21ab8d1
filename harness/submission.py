"""Submission CSV files: write them safely, read them back strictly.

A submission is a two-column CSV (default header ``ID,Answer``), UTF-8 without BOM, quoted per
RFC 4180 by the ``csv`` module so answers may hold commas, quotes and newlines. Reading never
goes through pandas: an answer "NA", "null" or "" stays exactly that string.
"""

from __future__ import annotations

import csv
import os
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.common.errors import HarnessError

COMMAS = (",", "\uff0c")  # ASCII and full-width commas, removed by strip_commas=True


def _preview(ids: Sequence[str], k: int = 5) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:k])
    return shown + (f" ... and {len(ids) - k} more" if len(ids) > k else "")


def _create_temp(folder: Path, name: str) -> tuple[int, Path]:
    """A new, exclusive temp file next to the target; mode 0666 minus the umask, like open()."""
    while True:
        tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


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

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)  # RFC 4180: CRLF rows, quotes only where needed
            writer.writerow([id_column, answer_column])
            for qid in ids:
                answer = answers.get(qid, "")
                if strip_commas:
                    for comma in COMMAS:
                        answer = answer.replace(comma, "")
                writer.writerow([qid, answer])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


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
