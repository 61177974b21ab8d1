"""harness.tasks.qa.metrics: hand-computed cases for every rule, plus agreement with the official scripts."""

from __future__ import annotations

import json
import os
import random
import re
import string
import subprocess
import sys
from collections import Counter

import pytest
from conftest import shared_file

from harness.tasks.qa.metrics import (
    METRIC_DIR,
    detect_lang,
    exact_match,
    f1_score,
    mixed_segmentation,
    normalize_answer,
    qa_scores,
    tokenize,
)

# ------------------------------------------------------------------ English (SQuAD v1.1) rules

def test_english_normalisation_case_punctuation_articles():
    assert normalize_answer("The  Denver, Broncos!", "en") == "denver broncos"
    assert normalize_answer("an apple a day", "en") == "apple day"
    assert normalize_answer("Anthem of theatre", "en") == "anthem of theatre"  # whole words only
    assert exact_match("the DENVER Broncos.", ["Denver Broncos"]) == 1.0
    assert exact_match("Denver", ["Denver Broncos"]) == 0.0


def test_english_partial_overlap_f1():
    # pred tokens [denver, broncos, team], ref [denver, broncos]: 2 shared
    # P = 2/3, R = 2/2, F1 = 2 * (2/3) * 1 / (2/3 + 1) = 0.8
    assert f1_score("Denver Broncos team", ["the Denver Broncos"]) == pytest.approx(0.8)
    # bag of tokens, counted with multiplicity: pred [x, y, y], ref [y, y, z] share y twice
    # P = R = 2/3 -> F1 = 2/3
    assert f1_score("x y y", ["y y z"]) == pytest.approx(2 / 3)
    assert f1_score("Carolina", ["Denver Broncos"]) == 0.0
    assert tokenize("The U.S. Army", "en") == ["us", "army"]


# ------------------------------------------------------------------ Chinese (CMRC 2018) rules

def test_chinese_char_level_f1():
    # pred 台北市政府 = 5 char tokens, ref 台北市 = 3, longest common run 台北市 = 3
    # P = 3/5, R = 3/3, F1 = 2 * 0.6 * 1 / 1.6 = 0.75
    assert f1_score("台北市政府", ["台北市"]) == pytest.approx(0.75)
    assert exact_match("台北市政府", ["台北市"]) == 0.0


def test_chinese_f1_counts_the_longest_contiguous_run_not_a_bag():
    # CMRC uses find_lcs (contiguous): 北台 vs 台北 share a run of 1, P = R = 1/2, F1 = 0.5
    # (a SQuAD-style bag of tokens would give 1.0)
    assert f1_score("北台", ["台北"]) == pytest.approx(0.5)
    # 台灣大學 vs 台大: runs 台 (1), so P = 1/4, R = 1/2, F1 = 2 * (1/8) / (3/4) = 1/3
    assert f1_score("台灣大學", ["台大"]) == pytest.approx(1 / 3)


def test_chinese_punctuation_and_space_removal():
    assert normalize_answer("「台北」。", "zh") == "台北"
    assert exact_match("《紅樓夢》", ["紅樓夢"]) == 1.0
    assert exact_match("  台北：信義區  ", ["台北信義區"]) == 1.0  # outer spaces stripped
    assert normalize_answer("ABC-DEF／", "zh") == "abcdef／"  # ASCII '-' listed, full-width '／' not
    # CMRC keeps inner spaces and unlisted ASCII punctuation ('.') in EM...
    assert exact_match("台 北", ["台北"]) == 0.0
    assert exact_match("台北.", ["台北"]) == 0.0
    # ...but F1 tokens ignore spaces: [台, 北] vs [台, 北] -> 1.0; and '.' is a token of its
    # own: [台, 北, .] vs [台, 北] -> P = 2/3, R = 1, F1 = 0.8
    assert f1_score("台 北", ["台北"]) == pytest.approx(1.0)
    assert f1_score("台北.", ["台北"]) == pytest.approx(0.8)


def test_mixed_chinese_latin_segmentation():
    assert mixed_segmentation("iPhone 6手機") == ["iphone", "6", "手", "機"]
    assert mixed_segmentation("iPhone6手機") == ["iphone6", "手", "機"]
    assert mixed_segmentation("e-mail地址") == ["email", "地", "址"]  # '-' dropped, run not split
    assert mixed_segmentation("約3.5公里。") == ["約", "3.5", "公", "里"]
    assert mixed_segmentation("「台北」", rm_punc=False) == ["「", "台", "北", "」"]
    # "iPhone 6手機" vs "iphone6": tokens [iphone, 6, 手, 機] vs [iphone6] share nothing
    assert f1_score("iPhone 6手機", ["iphone6"]) == 0.0
    # "iPhone6手機" vs "iphone6": [iphone6, 手, 機] vs [iphone6] share [iphone6]
    # P = 1/3, R = 1/1, F1 = 2 * (1/3) / (4/3) = 0.5
    assert f1_score("iPhone6手機", ["iphone6"]) == pytest.approx(0.5)
    # "Windows XP系統" vs "windows xp": [windows, xp, 系, 統] vs [windows, xp]
    # P = 2/4, R = 2/2, F1 = 2/3
    assert f1_score("Windows XP系統", ["windows xp"]) == pytest.approx(2 / 3)


def test_language_detection_and_override():
    assert detect_lang("Denver Broncos") == "en"
    assert detect_lang("1990", "1990年") == "zh"
    assert detect_lang("「」") == "zh"
    # a Chinese reference switches the question to CMRC rules: [1990] vs [1990, 年]
    # P = 1, R = 1/2, F1 = 2/3 (no article or punctuation stripping involved)
    assert f1_score("1990", ["1990年"]) == pytest.approx(2 / 3)
    assert exact_match("The cat", ["cat"]) == 1.0
    assert exact_match("The cat", ["cat"], lang="zh") == 0.0  # CMRC keeps articles
    assert exact_match("「台北」", ["台北"], lang="en") == 0.0  # SQuAD keeps CJK punctuation


# ------------------------------------------------------------------ references and aggregation

def test_max_over_references():
    # vs "Broncos": 0; vs "Denver Broncos": P = 1, R = 1/2 -> 2/3; the max is 2/3
    assert f1_score("Denver", ["Broncos", "Denver Broncos"]) == pytest.approx(2 / 3)
    assert exact_match("denver", ["Broncos", "Denver"]) == 1.0
    assert f1_score("台北市", ["高雄", "台北"]) == pytest.approx(0.8)  # vs 台北: run 2, P = 2/3, R = 1
    assert exact_match("Denver", "Denver") == 1.0  # a bare string is one reference


def test_squad_v2_no_answer_both_ways():
    for empty in ("", "  ", ".", "。", "the"):
        assert exact_match(empty, []) == 1.0, empty
        assert f1_score(empty, []) == 1.0, empty
    assert exact_match("Denver", []) == 0.0
    assert f1_score("Denver", []) == 0.0
    assert exact_match("", ["Denver"]) == 0.0
    assert f1_score("", ["Denver"]) == 0.0
    scores = qa_scores({"a": "", "b": "Denver"}, {"a": [], "b": []})
    assert (scores["em"], scores["f1"], scores["per_id"]) == (50.0, 50.0, {"a": (1.0, 1.0), "b": (0.0, 0.0)})


def test_missing_prediction_counts_as_empty_and_extra_is_ignored():
    refs = {"a": ["Denver Broncos"], "b": ["台北"], "c": []}
    scores = qa_scores({"a": "Denver", "zzz": "ignored"}, refs)
    # a: EM 0, F1 2/3; b (missing -> ""): 0, 0; c (missing -> "", no-answer): 1, 1
    assert scores["n"] == 3
    assert scores["per_id"] == {"a": (0.0, pytest.approx(2 / 3)), "b": (0.0, 0.0), "c": (1.0, 1.0)}
    assert scores["em"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)
    assert qa_scores({}, {}) == {"em": 0.0, "f1": 0.0, "n": 0, "per_id": {}}


# ------------------------------------------------------------------ the official scripts, literally

def _squad_normalize(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def _squad_f1(prediction, ground_truth):
    prediction_tokens = _squad_normalize(prediction).split()
    ground_truth_tokens = _squad_normalize(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def _squad_em(prediction, ground_truth):
    return _squad_normalize(prediction) == _squad_normalize(ground_truth)


def _max_over(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, gt) for gt in ground_truths)


def _perturb(rng, answer, context):
    """A plausible wrong-ish prediction: words dropped/added, case and punctuation changed."""
    words = answer.split()
    choice = rng.randrange(6)
    if choice == 0 and len(words) > 1:
        words.pop(rng.randrange(len(words)))
    elif choice == 1:
        extra = context.split()
        words = words + extra[rng.randrange(len(extra)):][:rng.randint(1, 3)]
    elif choice == 2:
        words = [rng.choice(["The", "a", "An"])] + words
    elif choice == 3:
        words = [w.upper() for w in words] + [rng.choice([".", ",", "!", "'s"])]
    elif choice == 4:
        words = context.split()[:rng.randint(1, 5)]
    return " ".join(words)


def test_agrees_with_official_squad_v11_script():
    data = json.loads(shared_file("squad/squad_v1.1_dev_even_articles.json").read_text(encoding="utf-8"))
    rng = random.Random(0)
    preds, refs = {}, {}
    for article in data["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"][:2]:
                gts = [a["text"] for a in qa["answers"]]
                if detect_lang(*gts) != "en":
                    continue
                preds[qa["id"]] = _perturb(rng, rng.choice(gts), para["context"])
                refs[qa["id"]] = gts
            if len(refs) >= 400:
                break
    assert len(refs) >= 300
    for qid, gts in refs.items():
        pred = preds[qid]
        assert exact_match(pred, gts) == float(_max_over(_squad_em, pred, gts)), (pred, gts)
        assert f1_score(pred, gts) == pytest.approx(_max_over(_squad_f1, pred, gts)), (pred, gts)
    scores = qa_scores(preds, refs)
    official_f1 = 100.0 * sum(_max_over(_squad_f1, preds[q], g) for q, g in refs.items()) / len(refs)
    assert scores["f1"] == pytest.approx(official_f1)
    assert 5 < scores["em"] < 95  # the perturbations really produce both hits and misses


# ------------------------------------------------------------------ the evaluate wrapper

def test_evaluate_metric_loads_offline(tmp_path):
    """evaluate.load(<folder>) works with HF_HUB_OFFLINE=1 (a subprocess: evaluate reads it at import)."""
    code = (
        "import json\n"
        "from harness.tasks.qa.metrics import load_metric\n"
        "m = load_metric()\n"
        "out = m.compute(\n"
        "    predictions=[{'id': '1', 'prediction_text': 'Denver'}, {'id': '2', 'prediction_text': '台北市'},\n"
        "                 {'id': '3', 'prediction_text': ''}],\n"
        "    references=[{'id': '1', 'answers': {'text': ['Denver Broncos'], 'answer_start': [0]}},\n"
        "                {'id': '2', 'answers': {'text': ['台北市', '台北'], 'answer_start': [0, 0]}},\n"
        "                {'id': '3', 'answers': {'text': [], 'answer_start': []}}])\n"
        "print(json.dumps(out))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # 1: EM 0, F1 2/3; 2: EM 1, F1 1; 3 (no answer, predicted ""): 1, 1
    assert out["exact_match"] == pytest.approx(200 / 3)
    assert out["f1"] == pytest.approx(100 * (2 / 3 + 2) / 3)
    assert (METRIC_DIR / "squad_metric.py").is_file()


# cmrc2018_evaluate.py (v5), ported to Python 3 line by line; nltk.word_tokenize (not installed
# here) is replaced by the same regex stand-in the module documents.
_SP_CHAR = ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
            '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
            '「', '」', '（', '）', '－', '～', '『', '』']


def _word_tokenize(s):
    return re.findall(r"\w+(?:[.,']\w+)*|[^\w\s]", s)


def _cmrc_mixed_segmentation(in_str, rm_punc=False):
    in_str = str(in_str).lower().strip()
    segs_out = []
    temp_str = ""
    for char in in_str:
        if rm_punc and char in _SP_CHAR:
            continue
        if re.search(r'[\u4e00-\u9fa5]', char) or char in _SP_CHAR:
            if temp_str != "":
                segs_out.extend(_word_tokenize(temp_str))
                temp_str = ""
            segs_out.append(char)
        else:
            temp_str += char
    if temp_str != "":
        segs_out.extend(_word_tokenize(temp_str))
    return segs_out


def _cmrc_remove_punctuation(in_str):
    in_str = str(in_str).lower().strip()
    return ''.join(char for char in in_str if char not in _SP_CHAR)


def _cmrc_find_lcs(s1, s2):
    m = [[0 for i in range(len(s2) + 1)] for j in range(len(s1) + 1)]
    mmax = 0
    p = 0
    for i in range(len(s1)):
        for j in range(len(s2)):
            if s1[i] == s2[j]:
                m[i + 1][j + 1] = m[i][j] + 1
                if m[i + 1][j + 1] > mmax:
                    mmax = m[i + 1][j + 1]
                    p = i + 1
    return s1[p - mmax:p], mmax


def _cmrc_f1(answers, prediction):
    f1_scores = []
    for ans in answers:
        ans_segs = _cmrc_mixed_segmentation(ans, rm_punc=True)
        prediction_segs = _cmrc_mixed_segmentation(prediction, rm_punc=True)
        lcs, lcs_len = _cmrc_find_lcs(ans_segs, prediction_segs)
        if lcs_len == 0:
            f1_scores.append(0)
            continue
        precision = 1.0 * lcs_len / len(prediction_segs)
        recall = 1.0 * lcs_len / len(ans_segs)
        f1_scores.append((2 * precision * recall) / (precision + recall))
    return max(f1_scores)


def _cmrc_em(answers, prediction):
    return int(any(_cmrc_remove_punctuation(a) == _cmrc_remove_punctuation(prediction) for a in answers))


def _perturb_zh(rng, answer, context):
    choice = rng.randrange(6)
    start = context.find(answer)
    if choice == 0 and len(answer) > 1:
        cut = rng.randrange(1, len(answer))
        return answer[:cut] if rng.random() < 0.5 else answer[cut:]
    if choice == 1 and start >= 0:
        return context[max(0, start - rng.randint(1, 4)):start + len(answer) + rng.randint(0, 4)]
    if choice == 2:
        return rng.choice(["「", "《", " "]) + answer + rng.choice(["」", "》", "。", "."])
    if choice == 3:
        return context[rng.randrange(len(context)):][:rng.randint(1, 8)]
    if choice == 4:
        return answer.upper() + rng.choice(["", " iPhone 6", "-e", "3.5"])
    return answer


def test_agrees_with_official_cmrc2018_script():
    data = json.loads(shared_file("drcd/DRCD_dev.json").read_text(encoding="utf-8"))
    rng = random.Random(1)
    pairs = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            qa = para["qas"][0]
            gts = [a["text"] for a in qa["answers"]]
            pairs.append((_perturb_zh(rng, rng.choice(gts), para["context"]), gts))
            if len(pairs) >= 400:
                break
    assert len(pairs) >= 300
    # answers without any CJK character (e.g. "1990" vs "1990") use the English rules instead
    zh_pairs = [(pred, gts) for pred, gts in pairs if detect_lang(pred, *gts) == "zh"]
    assert len(zh_pairs) >= 250
    for pred, gts in zh_pairs:
        assert exact_match(pred, gts) == float(_cmrc_em(gts, pred)), (pred, gts)
        assert f1_score(pred, gts) == pytest.approx(_cmrc_f1(gts, pred)), (pred, gts)


def test_normalisation_tables_equal_the_character_filters():
    # normalize_answer deletes punctuation with str.translate tables; the definition is the
    # character filter of the official scripts (SQuAD's exclude set, CMRC's sp_char)
    from harness.tasks.qa.metrics import _ARTICLES, CMRC_PUNCTUATION

    def by_filter(text, lang):
        if lang == "zh":
            return "".join(ch for ch in text.lower().strip() if ch not in CMRC_PUNCTUATION)
        text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
        return " ".join(_ARTICLES.sub(" ", text).split())

    rng = random.Random(0)
    alphabet = list(string.printable) + [p for p in CMRC_PUNCTUATION] + list("的一是…‘İÅ中文　ａ")
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        for lang in ("zh", "en"):
            assert normalize_answer(text, lang) == by_filter(text, lang), (text, lang)
