"""Which language a competition's text is in: Chinese or English, by the share of CJK characters."""

from __future__ import annotations

import re
from typing import Iterable

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")  # letters of any script
CJK_SHARE = 0.3  # a text whose letters are at least this share CJK is Chinese


def cjk_share(texts: Iterable[str], limit: int = 200_000) -> float:
    """The share of CJK ideographs among the letters of ``texts`` (read up to ``limit`` characters)."""
    cjk = letters = seen = 0
    for t in texts:
        t = t or ""
        cjk += len(_CJK.findall(t))
        letters += len(_LETTER.findall(t))
        seen += len(t)
        if seen >= limit:
            break
    return cjk / letters if letters else 0.0


def detect_language(texts: Iterable[str]) -> tuple[str, float]:
    """("zh" or "en", the CJK share it was decided on)."""
    share = cjk_share(texts)
    return ("zh" if share >= CJK_SHARE else "en"), share
