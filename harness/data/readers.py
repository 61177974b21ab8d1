"""Readers: raw competition files -> ``Example`` lists (one function per layout)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.data.example import Example


def read_squad(path: str | Path) -> list[Example]:
    """SQuAD v1.1/v2.0 layout (also DRCD and CMRC2018). Group = paragraph id or article index."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for a_i, article in enumerate(data["data"]):
        for p_i, para in enumerate(article["paragraphs"]):
            group = str(para.get("id", f"{a_i}-{p_i}"))
            for qa in para["qas"]:
                answers = qa.get("answers") or []
                out.append(Example(
                    id=str(qa["id"]), question=qa["question"], context=para["context"],
                    answers=tuple(a["text"] for a in answers),
                    answer_starts=tuple(int(a["answer_start"]) for a in answers),
                    group=group,
                ))
    return out
