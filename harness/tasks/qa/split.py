"""Split a labelled QA file into train and dev files, keeping paragraphs (or articles) whole.

HW7 students get ``hw7_dev.json`` but sometimes not the train file; anyone wants a private dev
split. Splitting by question would put one paragraph's questions on both sides (optimistic dev
scores), so groups are kept whole: a paragraph (HW7 ``paragraph_id``; a SQuAD context) or a SQuAD
article. Groups are shuffled with the seed and taken into dev until it holds the asked share of the
questions. The two files keep the input's layout (HW7: the full paragraph list, so ids stay valid).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from harness.common.errors import DataError, HarnessError
from harness.common.io import atomic_write_text


def _choose(groups: dict, share: float, seed: int) -> set:
    """The groups that go to dev: shuffled, taken while dev holds fewer than ``share`` of the questions."""
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    total = sum(groups.values())
    dev, n = set(), 0
    for g in order:
        if n >= share * total:
            break
        dev.add(g)
        n += groups[g]
    if len(dev) == len(order):
        dev.discard(order[-1])
    return dev


def split_file(path: str | Path, dev_share: float = 0.2, by: str = "paragraph", seed: int = 0,
               out_dir: str | Path | None = None) -> dict:
    """Write ``NAME.train.json`` and ``NAME.dev.json`` beside ``path`` (or in ``out_dir``)."""
    from harness.tasks.qa.readers import _load_json, detect_layout, read_examples

    path = Path(path)
    layout = detect_layout(path)
    if layout not in ("hw7", "squad"):
        raise HarnessError(f"{path}: split takes HW7 or SQuAD JSON files, this one is {layout}")
    examples = read_examples(path, layout=layout)
    if not any(ex.labelled for ex in examples):
        raise HarnessError(f"{path} has no answers: split a labelled file (a dev or train file), not a test file")
    data = _load_json(path)
    out_dir = Path(out_dir) if out_dir else path.parent
    stem = path.name[:-5] if path.name.endswith(".json") else path.stem
    if layout == "hw7":
        if by == "article":
            raise HarnessError("HW7 files have no articles", hint="use --by paragraph")
        sizes: dict = {}
        for q in data["questions"]:
            sizes[q["paragraph_id"]] = sizes.get(q["paragraph_id"], 0) + 1
        dev = _choose(sizes, dev_share, seed)
        parts = {name: {**data, "questions": [q for q in data["questions"] if (q["paragraph_id"] in dev) == is_dev]}
                 for name, is_dev in (("train", False), ("dev", True))}
        counts = {name: len(part["questions"]) for name, part in parts.items()}
    else:
        key = (lambda a, pi: (a,)) if by == "article" else (lambda a, pi: (a, pi))
        sizes = {}
        for a, article in enumerate(data["data"]):
            for pi, para in enumerate(article.get("paragraphs", [])):
                sizes[key(a, pi)] = sizes.get(key(a, pi), 0) + len(para.get("qas", []))
        dev = _choose(sizes, dev_share, seed)
        parts, counts = {}, {}
        for name, is_dev in (("train", False), ("dev", True)):
            articles = []
            for a, article in enumerate(data["data"]):
                paras = [p for pi, p in enumerate(article.get("paragraphs", [])) if (key(a, pi) in dev) == is_dev]
                if paras:
                    articles.append({**article, "paragraphs": paras})
            parts[name] = {**data, "data": articles}
            counts[name] = sum(len(p.get("qas", [])) for art in articles for p in art["paragraphs"])
    if not counts["train"] or not counts["dev"]:
        raise DataError(f"{path}: too few {by}s to split ({len(sizes)})")
    written = {}
    for name, part in parts.items():
        written[name] = atomic_write_text(out_dir / f"{stem}.{name}.json", json.dumps(part, ensure_ascii=False))
    return {"train": written["train"], "dev": written["dev"], "n_train": counts["train"], "n_dev": counts["dev"],
            "groups_train": len(sizes) - len(dev), "groups_dev": len(dev)}
