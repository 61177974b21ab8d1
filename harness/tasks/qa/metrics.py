"""The one QA metric module: exact match (EM) and F1 for extractive QA.

Two rule sets, picked per question (any CJK character in the prediction or a reference means
Chinese), or forced with ``lang="en"`` / ``lang="zh"``:

English -- the official SQuAD v1.1 ``evaluate-v1.1.py``:
    lowercase, drop ``string.punctuation``, drop the articles a/an/the, collapse whitespace;
    EM compares the normalised strings, F1 is the bag-of-tokens overlap of whitespace tokens.

Chinese -- the official CMRC 2018 ``cmrc2018_evaluate.py`` (also used for DRCD):
    lowercase + strip, drop the characters in :data:`CMRC_PUNCTUATION`; EM compares those strings.
    F1 segments both texts with :func:`mixed_segmentation` (each CJK character is a token, runs of
    other characters are word-tokenised) and scores the *longest common contiguous run* of tokens
    (not a bag-of-tokens overlap, unlike SQuAD).

Both scripts give F1 = 0 when nothing overlaps, even if both sides normalise to "". SQuAD v2
no-answer questions (an empty reference list) are scored here: right (1.0) iff the prediction
normalises to "".
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

EN = "en"
ZH = "zh"

# ---------------------------------------------------------------- English (SQuAD v1.1) rules
_EN_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)

# ---------------------------------------------------------------- Chinese (CMRC 2018) rules
#: ``sp_char`` of cmrc2018_evaluate.py, verbatim. It has no ASCII . , ! ? ( ) " ' and no "‘";
#: its "……" entry is two characters long, so it never matches a single character.
CMRC_PUNCTUATION = frozenset([
    "-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=",
    "，", "。", "：", "？", "！", "“", "”", "；", "’", "《", "》", "……", "·", "、",
    "「", "」", "（", "）", "－", "～", "『", "』",
])
#: what the official script treats as one-character tokens (CJK Unified Ideographs, basic block)
_CJK_TOKEN = re.compile(r"[\u4e00-\u9fa5]")
#: what makes a text "Chinese" for rule selection: ideographs, CJK punctuation, full-width forms
_CJK_DETECT = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
#: stand-in for nltk.word_tokenize on the non-CJK runs: words (keeping inner . , ' as in
#: "3.5", "1,000", "u.s") and every other non-space character as its own token
_WORD_TOKEN = re.compile(r"\w+(?:[.,']\w+)*|[^\w\s]")


def detect_lang(*texts: str) -> str:
    """``"zh"`` if any text holds a CJK character (ideograph, CJK or full-width punctuation), else ``"en"``."""
    return ZH if any(_CJK_DETECT.search(t or "") for t in texts) else EN


def mixed_segmentation(text: str, rm_punc: bool = True) -> list[str]:
    """CMRC 2018 ``mixed_segmentation``: one token per CJK character, word tokens for the rest.

    Text is lowercased and stripped first. With ``rm_punc`` the CMRC punctuation is dropped
    *without* splitting the surrounding run ("e-mail" -> ["email"]); without it, each punctuation
    character is a token of its own.
    """
    tokens: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            tokens.extend(_WORD_TOKEN.findall("".join(run)))
            run.clear()

    for ch in text.lower().strip():
        if rm_punc and ch in CMRC_PUNCTUATION:
            continue
        if _CJK_TOKEN.match(ch) or ch in CMRC_PUNCTUATION:
            flush()
            tokens.append(ch)
        else:
            run.append(ch)
    flush()
    return tokens


# the same filters as ``"".join(ch for ch in text if ch not in PUNCTUATION)``, as deletion tables
# for ``str.translate`` (a multi-character entry such as "……" never matches one character)
_ZH_DELETE = {ord(p): None for p in CMRC_PUNCTUATION if len(p) == 1}
_EN_DELETE = {ord(p): None for p in _EN_PUNCTUATION}


def normalize_answer(text: str, lang: str | None = None) -> str:
    """The string EM compares: SQuAD v1.1 ``normalize_answer`` or CMRC ``remove_punctuation``."""
    text = text or ""
    lang = lang or detect_lang(text)
    if lang == ZH:
        return text.lower().strip().translate(_ZH_DELETE)
    text = text.lower().translate(_EN_DELETE)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokenize(text: str, lang: str | None = None) -> list[str]:
    """The tokens F1 counts: normalised whitespace tokens (en) or :func:`mixed_segmentation` (zh)."""
    text = text or ""
    lang = lang or detect_lang(text)
    return mixed_segmentation(text) if lang == ZH else normalize_answer(text, EN).split()


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous sub-sequence (CMRC ``find_lcs``)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def _token_f1(pred: list[str], ref: list[str], lang: str) -> float:
    if lang == ZH:
        common = _longest_common_run(ref, pred)
    else:
        common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _refs(references: Sequence[str] | str) -> tuple[str, ...]:
    # a bare string is one reference, not a sequence of one-character references
    return (references,) if isinstance(references, str) else tuple(references)


def _no_answer_score(prediction: str, lang: str | None) -> float:
    return float(normalize_answer(prediction, lang) == "")


def exact_match(prediction: str, references: Sequence[str], lang: str | None = None) -> float:
    """1.0 if the normalised prediction equals any normalised reference, else 0.0.

    No references (SQuAD v2 no-answer): 1.0 iff the prediction normalises to "".
    """
    prediction, references = prediction or "", _refs(references)
    if not references:
        return _no_answer_score(prediction, lang)
    lang = lang or detect_lang(prediction, *references)
    pred = normalize_answer(prediction, lang)
    return float(any(pred == normalize_answer(r, lang) for r in references))


def f1_score(prediction: str, references: Sequence[str], lang: str | None = None) -> float:
    """Best token F1 (0..1) over the references; no references: same as :func:`exact_match`."""
    prediction, references = prediction or "", _refs(references)
    if not references:
        return _no_answer_score(prediction, lang)
    lang = lang or detect_lang(prediction, *references)
    pred = tokenize(prediction, lang)
    return max(_token_f1(pred, tokenize(r, lang), lang) for r in references)


def qa_scores(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    lang: str | None = None,
) -> dict:
    """EM and F1 (0-100) over the ids of ``references``; a missing prediction counts as "".

    Returns ``{"em", "f1", "n", "per_id": {id: (em, f1)}}`` with per-id scores in 0..1.
    Predictions for ids not in ``references`` are ignored. With no references em = f1 = 0.0.
    """
    per_id: dict[str, tuple[float, float]] = {}
    for qid, refs in references.items():
        pred = predictions.get(qid) or ""
        per_id[qid] = (exact_match(pred, refs, lang), f1_score(pred, refs, lang))
    n = len(per_id)
    em = 100.0 * sum(e for e, _ in per_id.values()) / n if n else 0.0
    f1 = 100.0 * sum(f for _, f in per_id.values()) / n if n else 0.0
    return {"em": em, "f1": f1, "n": n, "per_id": per_id}


METRIC_DIR = Path(__file__).resolve().with_name("squad_metric")


def load_metric(**kwargs):
    """``evaluate.load`` of the local SQuAD-style metric wrapping :func:`qa_scores` (no network)."""
    import evaluate

    return evaluate.load(str(METRIC_DIR), **kwargs)
