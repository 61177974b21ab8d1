"""The built-in ``demo`` competition: synthetic traditional-Chinese reading comprehension.

Paragraphs are 6-13 template sentences (150-400 characters, median ~210) about 2-3 fictional
people and the companies, schools and towns they mention, plus neutral filler sentences::

    潘麗於2003年出生於南月城，從小就喜歡游泳。每逢週末，街上總是擠滿了遊客和攤販。南月城位於本島
    北部，人口約為59181人，以盛產竹筍聞名。...潘麗在1924年獲得了金星獎，當時潘麗才66歲。...

    潘麗在哪一年獲得了金星獎？ -> 1924        南月城大約有多少人口？ -> 59181

A question repeats the words of its sentence with the asked slot replaced by a question word.
Relations are distinct within a paragraph except that half the paragraphs repeat one relation for
a second person (then only the name tells them apart); every paragraph carries several answers
of the same type (years, places, counts, names), answers sit anywhere in the paragraph, and
every paragraph needs several 128-token windows, so neither a fixed position nor "the first
number" works (about 3% EM).

Measured learnability (2-layer hidden-128 BERT from scratch, character tokens, 128-token
windows containing the answer, lr 3e-3, batch 32, ~0.27 s a step on 2 idle CPU cores): dev EM
about 6% after 300 steps, 19% after 700, a plateau near 23% after 1,000-1,500 steps with the
default 1,500 training questions (it then overfits), 32% with ``n_train=6000``. The data cannot
make a minute (~220 steps) enough; a run that should show learning needs ~1,000 steps.

Files are in the HW7 layout (integer ids, inclusive ``answer_end``): ``train.json``,
``dev.json``, ``test.json`` (answers null, as in the real test file) and ``test_gold.json`` (the
test answers, for a local private board). Paragraphs never repeat across splits. Output is
byte-identical for a seed (no set or hash ordering); ``demo_manifest.json`` records seed, sizes,
version and file hashes so that :func:`generate_demo` skips work when the files are already there.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from harness.common.generated import is_stale, write_generated

DEMO_VERSION = 1
MANIFEST = "demo_manifest.json"
SPLIT_FILES = {"train": "train.json", "dev": "dev.json", "test": "test.json", "test_gold": "test_gold.json"}
PARAGRAPH_CHARS = (150, 400)
REPEAT_P = 0.5  # chance that a paragraph repeats one relation for a second person
EXTRA_P = {"O": 0.7, "C": 0.4}  # chance of a company / town fact after the first sentence naming one

# ---- word pools (traditional characters) ------------------------------------------------------

SURNAMES = list("王李張劉陳楊黃趙吳周徐孫馬朱胡郭何林高羅鄭梁謝宋唐許韓馮鄧曹彭曾蕭田董潘袁蔡蔣余杜葉程蘇魏呂丁沈姚盧")
GIVEN = list("明華強芳麗偉婷傑怡欣宏志嘉家俊雅文德安平美玉國健佳冠宇翔瑋琪珊淑惠慧秀英誠豪")
PLACE_HEAD = list("青石白雲東西南北金銀松竹梅蘭桃楓龍鳳月星海山河湖江溪泉林谷峰春秋永安福興新和豐")
PLACE_TAIL = ["鎮", "村", "港", "市", "鄉", "城", "島"]
ORG_HEAD = list("星光晨曦藍天綠葉海洋山嵐金禾鼎盛遠航新創宏達華通永信聯合福康")
ORG_TAIL = ["公司", "書店", "銀行", "工廠", "餐廳", "樂團", "出版社", "研究所", "農場", "旅行社"]
SCHOOL_TAIL = ["大學", "中學", "學院", "高中"]
MAJORS = ["物理", "化學", "歷史", "音樂", "經濟", "法律", "數學", "建築", "哲學", "醫學", "美術", "地理"]
HOBBIES = ["爬山", "游泳", "畫畫", "下棋", "彈鋼琴", "攝影", "釣魚", "跑步", "唱歌", "閱讀", "園藝", "書法"]
FOODS = ["牛肉麵", "小籠包", "蛋餅", "滷肉飯", "水餃", "炒飯", "鳳梨酥", "豆花", "芒果冰", "蚵仔煎", "肉圓", "米糕"]
GOODS = ["茶葉", "稻米", "鳳梨", "香蕉", "蘭花", "竹筍", "咖啡", "海鹽", "柑橘", "蜂蜜", "木瓜", "蓮藕"]
AWARDS = ["金星獎", "青年文學獎", "傑出創業獎", "金筆獎", "銀河獎", "年度人物獎", "白鷺獎", "社會服務獎"]
BOOK_A = ["海上", "山中", "遠方", "夜晚", "夏天", "冬日", "城市", "森林", "河邊", "窗外", "島上", "雨後"]
BOOK_B = ["星光", "故事", "燈塔", "花園", "歌聲", "秘密", "旅人", "信件", "夢想", "風景", "火車", "小屋"]
DIRECTIONS = ["東部", "西部", "南部", "北部", "中部"]
FILLERS = [
    "這件事在當時引起了不少討論，許多報紙都曾經報導過。", "許多人至今仍記得那段日子，也常常在聚會時提起。",
    "當地居民大多十分熱情，對外地來的訪客總是格外照顧。", "那一年的夏天特別炎熱，河邊每天都擠滿了戲水的孩子。",
    "這段經歷後來被寫進了地方誌，成為鎮上老人津津樂道的故事。", "附近的山區每到秋天都會變得一片金黃。",
    "每逢週末，街上總是擠滿了遊客和攤販。", "這裡的冬天很少下雪，但清晨常常起霧。",
    "老街上的廟宇已有很長的歷史，香火一直十分興旺。", "鎮上的圖書館每天晚上都開放到很晚。",
    "雨季來臨時，山路常常因為落石而封閉。", "傳統市場裡販賣著各式各樣的蔬菜和水果。",
]


# ---- fact templates ----------------------------------------------------------------------------
# A fact is one sentence; ``asks`` maps a slot to question templates. "{P}" is the subject person,
# "{O}" a company, "{C}"/"{C2}" places, "{Y}" years, "{N}"/"{M}" numbers, the rest word slots.

@dataclass(frozen=True)
class Fact:
    subject: str  # "P" person, "O" organisation, "C" place
    sentence: str
    asks: dict = field(default_factory=dict)


PERSON_FACTS = [
    Fact("P", "{P}於{Y}年出生於{C}，從小就喜歡{H}。",
         {"Y": ["{P}在哪一年出生？", "{P}是哪一年出生的？"], "C": ["{P}出生於哪裡？", "{P}的出生地是哪裡？"],
          "H": ["{P}從小就喜歡什麼？"]}),
    Fact("P", "{P}在{Y}年創立了{O}，總部設在{C}。",
         {"Y": ["{P}在哪一年創立了{O}？", "{O}是在哪一年創立的？"], "O": ["{P}在{Y}年創立了什麼？"],
          "P": ["{O}是由誰創立的？", "誰在{Y}年創立了{O}？"], "C": ["{O}的總部設在哪裡？"]}),
    Fact("P", "{P}畢業於{S}，主修{MAJ}。",
         {"S": ["{P}畢業於哪一所學校？", "{P}是哪所學校畢業的？"], "MAJ": ["{P}在{S}主修什麼？", "{P}主修什麼科目？"]}),
    Fact("P", "{Y}年，{P}搬到了{C}，在那裡住了{N}年。",
         {"Y": ["{P}在哪一年搬到了{C}？"], "C": ["{P}在{Y}年搬到了哪裡？"], "N": ["{P}在{C}住了幾年？"]}),
    Fact("P", "{P}寫過一本名為《{B}》的小說，全書共{N}頁。",
         {"B": ["{P}寫過的小說叫什麼名字？", "{P}寫過哪一本小說？"], "N": ["《{B}》全書共有幾頁？"],
          "P": ["《{B}》的作者是誰？"]}),
    Fact("P", "{P}最喜歡的食物是{F}，最好的朋友是{P2}。",
         {"F": ["{P}最喜歡吃什麼？", "{P}最喜歡的食物是什麼？"], "P2": ["{P}最好的朋友是誰？"]}),
    Fact("P", "{P}在{Y}年獲得了{A}，當時{P}才{N}歲。",
         {"Y": ["{P}在哪一年獲得了{A}？"], "A": ["{P}在{Y}年獲得了什麼獎？"], "N": ["{P}獲得{A}時幾歲？"]}),
]
ORG_FACTS = [
    Fact("O", "{O}目前共有{N}名員工，去年營收約{M}萬元。",
         {"N": ["{O}目前共有多少名員工？", "{O}有幾名員工？"], "M": ["{O}去年的營收約為多少萬元？"]}),
]
PLACE_FACTS = [
    Fact("C", "{C}位於本島{DIR}，人口約為{N}人，以盛產{G}聞名。",
         {"N": ["{C}的人口約為多少人？", "{C}大約有多少人口？"], "G": ["{C}以盛產什麼聞名？"],
          "DIR": ["{C}位於本島的哪一部分？"]}),
]
NUMBER_RANGES = {  # (fact sentence, slot) -> range; default for "{N}"/"{M}"
    ("{O}目前共有{N}名員工，去年營收約{M}萬元。", "N"): (12, 4999),
    ("{O}目前共有{N}名員工，去年營收約{M}萬元。", "M"): (300, 99999),
    ("{C}位於本島{DIR}，人口約為{N}人，以盛產{G}聞名。", "N"): (1200, 98000),
    ("{Y}年，{P}搬到了{C}，在那裡住了{N}年。", "N"): (2, 40),
    ("{P}寫過一本名為《{B}》的小說，全書共{N}頁。", "N"): (80, 900),
    ("{P}在{Y}年獲得了{A}，當時{P}才{N}歲。", "N"): (18, 80),
}


# ---- entity sampling ---------------------------------------------------------------------------

class _Pools:
    """Draws entity strings never used before in the current paragraph."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def fresh(self, make) -> str:
        """A value from ``make()`` that neither equals, contains nor is contained in a used one."""
        for _ in range(100):
            value = make()
            if not self._clashes(value):
                self.used.add(value)
                return value
        raise RuntimeError("demo generator: entity pool exhausted")  # pragma: no cover

    def _clashes(self, value: str) -> bool:
        if value in self.used:
            return True
        return len(value) > 1 and any(len(u) > 1 and (value in u or u in value) for u in self.used)

    def person(self) -> str:
        r = self.rng
        return self.fresh(lambda: r.choice(SURNAMES) + "".join(r.sample(GIVEN, r.choice((1, 2, 2)))))

    def place(self) -> str:
        r = self.rng
        return self.fresh(lambda: "".join(r.sample(PLACE_HEAD, 2)) + r.choice(PLACE_TAIL))

    def org(self) -> str:
        r = self.rng
        return self.fresh(lambda: "".join(r.sample(ORG_HEAD, 2)) + r.choice(ORG_TAIL))

    def school(self) -> str:
        r = self.rng
        return self.fresh(lambda: "".join(r.sample(PLACE_HEAD, 2)) + r.choice(SCHOOL_TAIL))

    def book(self) -> str:
        r = self.rng
        return self.fresh(lambda: r.choice(BOOK_A) + "的" + r.choice(BOOK_B))

    def pick(self, words: list[str]) -> str:
        return self.fresh(lambda: self.rng.choice(words))

    def number(self, lo: int, hi: int) -> str:
        return self.fresh(lambda: str(self.rng.randint(lo, hi)))


# ---- paragraphs and questions -------------------------------------------------------------------

@dataclass
class _Sentence:
    text: str
    values: dict  # slot -> value
    fact: Fact


def _fill_fact(fact: Fact, pools: _Pools, subject: dict) -> _Sentence:
    """Fill every slot of ``fact`` (``subject`` pre-sets P/O/C) with fresh values."""
    makers = {"Y": lambda: pools.number(1901, 2023), "C": pools.place, "C2": pools.place,
              "O": pools.org, "S": pools.school, "B": pools.book, "P2": pools.person,
              "H": lambda: pools.pick(HOBBIES), "F": lambda: pools.pick(FOODS),
              "G": lambda: pools.pick(GOODS), "A": lambda: pools.pick(AWARDS),
              "MAJ": lambda: pools.pick(MAJORS), "DIR": lambda: pools.pick(DIRECTIONS)}
    values = dict(subject)
    for slot in _slots(fact.sentence):
        if slot in values:
            continue
        if slot in ("N", "M"):
            values[slot] = pools.number(*NUMBER_RANGES[(fact.sentence, slot)])
        else:
            values[slot] = makers[slot]()
    return _Sentence(fact.sentence.format(**values), values, fact)


def _slots(template: str) -> list[str]:
    """Slot names in order of first appearance: "{P}於{Y}年" -> ["P", "Y"]."""
    out = []
    for part in template.split("{")[1:]:
        name = part.split("}", 1)[0]
        if name not in out:
            out.append(name)
    return out


def _plan(rng: random.Random) -> tuple[int, list[tuple[int, Fact]]]:
    """(person index, fact) pairs for 2-3 people.

    Relations are distinct within the paragraph, so most questions are answered by finding their
    relation (among same-type distractors: every person fact has a year, place, name or count);
    with probability ``REPEAT_P`` one relation is repeated for another person, and only the name
    tells the two apart.
    """
    n_people = rng.choice((2, 2, 3))
    facts = rng.sample(PERSON_FACTS, rng.randint(n_people + 1, len(PERSON_FACTS)))
    owners = [i % n_people for i in range(len(facts))]
    rng.shuffle(owners)
    plan = list(zip(owners, facts))
    if rng.random() < REPEAT_P:
        owner, fact = rng.choice(plan)
        plan.append(((owner + 1) % n_people, fact))
    return n_people, plan


def _sentences(rng: random.Random, pools: _Pools) -> list[_Sentence | str]:
    """Person blocks in order, at most one company and one town fact, 0-3 filler sentences."""
    n_people, plan = _plan(rng)
    people = [pools.person() for _ in range(n_people)]
    out: list[_Sentence | str] = []
    extras = {"O": ORG_FACTS[0], "C": PLACE_FACTS[0]}
    for who in range(n_people):
        for owner, fact in plan:
            if owner != who:
                continue
            sent = _fill_fact(fact, pools, {"P": people[who]})
            out.append(sent)
            for slot in [k for k in extras if k in sent.values]:
                if rng.random() < EXTRA_P[slot]:
                    out.append(_fill_fact(extras.pop(slot), pools, {slot: sent.values[slot]}))
                    break
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        out.insert(rng.randrange(len(out) + 1), rng.choice(FILLERS))
    return out


def _paragraph(rng: random.Random) -> tuple[str, list[_Sentence], list[int]] | None:
    """One paragraph (text, fact sentences, their offsets), or None when its length is off."""
    sentences = _sentences(rng, _Pools(rng))
    starts, pos = [], 0
    for s in sentences:
        starts.append(pos)
        pos += len(s if isinstance(s, str) else s.text)
    text = "".join(s if isinstance(s, str) else s.text for s in sentences)
    if not PARAGRAPH_CHARS[0] <= len(text) <= PARAGRAPH_CHARS[1]:
        return None
    keep = [(s, p) for s, p in zip(sentences, starts) if not isinstance(s, str)]
    return text, [s for s, _ in keep], [p for _, p in keep]


def _questions(rng: random.Random, text: str, sentences: list[_Sentence], starts: list[int],
               k: int) -> list[tuple[str, str, int]]:
    """Up to ``k`` (question, answer, answer_start) pairs from different slots of the paragraph."""
    candidates = []
    for sent, offset in zip(sentences, starts):
        for slot, templates in sent.fact.asks.items():
            question = rng.choice(templates).format(**sent.values)
            answer = sent.values[slot]
            start = offset + _slot_offset(sent, slot)
            assert text[start:start + len(answer)] == answer
            if slot in ("P", "P2") or text.count(answer) == 1:  # names may repeat; the rest is unique
                candidates.append((question, answer, start))
    rng.shuffle(candidates)
    seen, out = set(), []
    for q in candidates:
        if q[0] not in seen:
            seen.add(q[0])
            out.append(q)
    return out[:k]


def _slot_offset(sent: _Sentence, slot: str) -> int:
    """Character offset of ``slot``'s first occurrence in the filled sentence."""
    template = sent.fact.sentence
    head = template.split("{" + slot + "}", 1)[0]
    return len(head.format(**sent.values))


def _split(rng: random.Random, n_questions: int, seen: set[str]) -> dict:
    """HW7-layout dict with exactly ``n_questions`` questions on paragraphs not in ``seen``."""
    questions, paragraphs = [], []
    while len(questions) < n_questions:
        para = _paragraph(rng)
        if para is None or para[0] in seen:
            continue
        text, sentences, starts = para
        qs = _questions(rng, text, sentences, starts, min(rng.randint(3, 6), n_questions - len(questions)))
        if not qs:
            continue
        seen.add(text)
        for question, answer, start in qs:
            questions.append({"id": len(questions), "paragraph_id": len(paragraphs), "question_text": question,
                              "answer_text": answer, "answer_start": start,
                              "answer_end": start + len(answer) - 1})
        paragraphs.append(text)
    return {"questions": questions, "paragraphs": paragraphs}


def _unlabelled(split: dict) -> dict:
    blank = {"answer_text": None, "answer_start": None, "answer_end": None}
    return {"questions": [{**q, **blank} for q in split["questions"]], "paragraphs": split["paragraphs"]}


# ---- files and manifest -------------------------------------------------------------------------

def _dump(obj: dict) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=4) + "\n").encode("utf-8")


def _params(seed: int, n_train: int, n_dev: int, n_test: int) -> dict:
    return {"version": DEMO_VERSION, "seed": seed, "sizes": {"train": n_train, "dev": n_dev, "test": n_test}}


def demo_is_stale(out_dir: str | Path, seed: int = 0, n_train: int = 1500, n_dev: int = 300,
                  n_test: int = 300) -> bool:
    """True unless ``out_dir`` holds demo files of this version, seed and sizes, unmodified."""
    return is_stale(out_dir, MANIFEST, _params(seed, n_train, n_dev, n_test), SPLIT_FILES.values())


def generate_demo(out_dir: str | Path, seed: int = 0, n_train: int = 1500, n_dev: int = 300,
                  n_test: int = 300, force: bool = False) -> dict[str, Path]:
    """Write the demo competition files to ``out_dir``; return {"train", "dev", "test", "test_gold",
    "manifest"} -> path. Skips the work when the files are already there (see :func:`demo_is_stale`)
    unless ``force``.
    """
    out_dir = Path(out_dir)
    paths = {k: out_dir / v for k, v in SPLIT_FILES.items()} | {"manifest": out_dir / MANIFEST}
    if not force and not demo_is_stale(out_dir, seed, n_train, n_dev, n_test):
        return paths
    rng, seen = random.Random(f"harness-demo-{DEMO_VERSION}-{seed}"), set()
    train = _split(rng, n_train, seen)
    dev = _split(rng, n_dev, seen)
    test = _split(rng, n_test, seen)
    blobs = {"train.json": _dump(train), "dev.json": _dump(dev), "test.json": _dump(_unlabelled(test)),
             "test_gold.json": _dump(test)}
    write_generated(out_dir, blobs, MANIFEST, _params(seed, n_train, n_dev, n_test))
    return paths


if __name__ == "__main__":  # python -m harness.tasks.qa.demo OUT_DIR [SEED]
    import sys

    for key, value in generate_demo(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0).items():
        print(f"{key}: {value}")
