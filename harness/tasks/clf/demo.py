"""The built-in classification demo: synthetic English product reviews in three classes.

Each review is 8-60 words (median ~29): 1-3 opinion clauses about a product or its aspects,
joined into sentences with connectives ("and", "but", "also", ...), among 0-8 neutral filler
sentences ("I bought it for my sister last month.") that carry no signal::

    r00024,"After a month, the keyboard is never weak. It replaced an older model from another brand.",positive
    r00034,"In short, the delivery was not absolutely noisy at all but the blender is useless.",neutral
    r00057,"My old one broke in the spring. So far, the phone case was not so great. Also, I regret
    buying it!",negative

Labels (majority class ~40%):

* ``positive`` (40%): every opinion clause positive, a third of them through negated negative
  words ("the strap is not flimsy at all", "I do not regret buying it");
* ``negative`` (35%): every opinion clause negative, a third through negated positive words
  ("the sound is not very good", "I would not recommend it");
* ``neutral`` (25%): lukewarm clauses ("it does the job", "neither great nor terrible") or a
  mixed review with one positive and one negative clause.

Intensifiers ("very", "really", "absolutely") and fillers carry no signal; "but" appears in every
class. Negation makes the polar words of one class appear in the other, so a bag of words that
ignores word order stays well below 100%: a unigram logistic regression gets about 77% dev
accuracy (the same with negation words dropped), a uni+bigram one about 85% ("not very good"
and mixed-vs-single clauses still fool it), while a model that reads each clause with its
negation can get every noise-free example right. About 5% of the train labels (only train) are
replaced by another class at random; dev and the test gold labels are clean.

Files (CSV, ``id,text,label``; ids "r00000", unique across the splits): ``train.csv``,
``dev.csv``, ``test.csv`` (no label column) and ``test_gold.csv`` (``id,text,label``, for a local
private board). Texts never repeat across or within splits. Output is byte-identical for a seed;
``clf_demo_manifest.json`` records version, seed, sizes and file hashes so that
:func:`generate_clf_demo` skips work when the files are already there.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from harness.common.generated import is_stale, write_generated

CLF_DEMO_VERSION = 1
MANIFEST = "clf_demo_manifest.json"
SPLIT_FILES = {"train": "train.csv", "dev": "dev.csv", "test": "test.csv", "test_gold": "test_gold.csv"}
LABELS = ("negative", "neutral", "positive")
CLASS_SHARES = {"positive": 0.40, "negative": 0.35, "neutral": 0.25}
NOISE = 0.05  # share of train labels replaced by another class
WORDS = (8, 60)
NEGATED_P = 0.35  # chance that a polar clause is said through negation

# ---- vocabulary ------------------------------------------------------------------------------------

PRODUCTS = ["headphones", "coffee maker", "backpack", "phone case", "desk lamp", "blender", "keyboard",
            "water bottle", "running shoes", "tent", "vacuum cleaner", "toaster", "monitor", "charger",
            "jacket", "office chair", "speaker", "kettle", "mouse", "suitcase", "camera", "watch"]
ASPECTS = ["the battery", "the sound", "the price", "the design", "the delivery", "the packaging",
           "customer service", "the build quality", "the material", "the instructions", "the color",
           "the size", "the setup", "the screen", "the strap", "the lid", "the handle", "the app"]
POS_ADJ = ["good", "great", "excellent", "amazing", "fantastic", "solid", "perfect", "wonderful",
           "impressive", "reliable", "sturdy", "comfortable", "fast", "nice", "brilliant"]
NEG_ADJ = ["bad", "terrible", "awful", "poor", "horrible", "flimsy", "cheap", "disappointing", "useless",
           "slow", "weak", "noisy", "fragile", "clumsy", "dreadful"]
INTENSIFIERS = ["very ", "really ", "extremely ", "absolutely ", "incredibly ", "so ", "quite ", "truly "]
# verb phrases: (plain, negated) with the polarity of the plain form
POS_VERBS = [("I love it", "I do not love it"), ("I would recommend it", "I would not recommend it"),
             ("it works perfectly", "it does not work perfectly"), ("I am happy with it", "I am not happy with it"),
             ("it exceeded my expectations", "it did not meet my expectations"),
             ("it is worth every penny", "it is not worth the money"),
             ("I would buy it again", "I would never buy it again")]
NEG_VERBS = [("I hate it", "I do not hate it"), ("I regret buying it", "I do not regret buying it"),
             ("it stopped working after a week", "it never stopped working"),
             ("it disappointed me", "it did not disappoint me"), ("I want a refund", "I do not want a refund"),
             ("it broke after two days", "it never broke"), ("it let me down", "it never let me down")]
LUKEWARM = ["it is okay", "it is fine for the price", "it is average", "it is nothing special",
            "it does the job", "it is neither great nor terrible", "it works as described",
            "it is what you would expect", "it is decent enough I guess", "I have no strong feelings either way",
            "it is just alright", "it is a fairly ordinary {p}", "{a} is acceptable", "{a} is about average",
            "{a} is neither good nor bad"]
FILLERS = ["I bought it for my sister last month.", "It arrived on a Tuesday.",
           "I have had it for two weeks now.", "My old one broke in the spring.",
           "I use it mostly on weekends.", "The box was blue and white.",
           "I ordered it after reading a few reviews.", "My husband picked it out.",
           "We took it on a trip to the lake.", "I needed one for my new apartment.",
           "It came in a large cardboard box.", "I paid with a gift card.",
           "This is my second order from this shop.", "I am writing this review on my lunch break.",
           "A friend of mine has the same model.", "I compared three brands before choosing.",
           "It was delivered to my office.", "I mainly use it in the kitchen.",
           "My kids use it every day.", "It replaced an older model from another brand."]
OPENERS = ["Honestly, ", "Overall, ", "To be fair, ", "In short, ", "After a month, ", "So far, ", ""]
JOIN_SAME = [" and ", ", also ", ", and ", ". Also, ", ". "]
JOIN_MIXED = [" but ", ", however ", " while ", ". On the other hand, ", ", although ", " and "]


# ---- clauses -----------------------------------------------------------------------------------------

def _adj_clause(rng: random.Random, subject: str, polarity: int, negated: bool) -> str:
    """"{subject} is [not] [very] {adj}": a negated clause uses an adjective of the other polarity."""
    words = (POS_ADJ if (polarity > 0) != negated else NEG_ADJ)
    adj = rng.choice(words)
    boost = rng.choice(INTENSIFIERS) if rng.random() < 0.35 else ""
    if negated:
        tail = " at all" if rng.random() < 0.3 else ""
        verb = rng.choice(["is not", "is not", "was not", "is never", "isn't"])
        return f"{subject} {verb} {boost}{adj}{tail}"
    return f"{subject} {rng.choice(['is', 'is', 'was', 'feels', 'seems'])} {boost}{adj}"


def _verb_clause(rng: random.Random, polarity: int, negated: bool) -> str:
    """A verb phrase whose (plain or negated) form has ``polarity``."""
    plain, neg = rng.choice(NEG_VERBS if (polarity > 0) == negated else POS_VERBS)
    return neg if negated else plain


def _polar(rng: random.Random, polarity: int, product: str) -> str:
    negated = rng.random() < NEGATED_P
    if rng.random() < 0.3:
        return _verb_clause(rng, polarity, negated)
    subject = rng.choice([rng.choice(ASPECTS), rng.choice(ASPECTS), f"the {product}", "it"])
    return _adj_clause(rng, subject, polarity, negated)


def _lukewarm(rng: random.Random, product: str) -> str:
    return rng.choice(LUKEWARM).format(p=product, a=rng.choice(ASPECTS))


def _clauses(rng: random.Random, label: str, product: str) -> tuple[list[str], list[str]]:
    """(opinion clauses, connectives between them) for ``label``."""
    if label == "neutral" and rng.random() < 0.5:
        clauses = [_polar(rng, 1, product), _polar(rng, -1, product)]
        rng.shuffle(clauses)
        return clauses, [rng.choice(JOIN_MIXED)]
    if label == "neutral":
        clauses = [_lukewarm(rng, product) for _ in range(rng.choice((1, 1, 2)))]
    else:
        polarity = 1 if label == "positive" else -1
        clauses = [_polar(rng, polarity, product) for _ in range(rng.choice((1, 1, 2, 2, 3)))]
    joins = [rng.choice(JOIN_SAME + [" but "]) if rng.random() < 0.15 else rng.choice(JOIN_SAME)
             for _ in clauses[1:]]
    return clauses, joins


def _opinion(rng: random.Random, label: str, product: str) -> str:
    """The opinion sentences: clauses joined, first letters capitalised, a final "." or "!"."""
    clauses, joins = _clauses(rng, label, product)
    text = rng.choice(OPENERS) + clauses[0]
    for join, clause in zip(joins, clauses[1:]):
        text += join + clause
    text += "!" if rng.random() < 0.15 else "."
    return _capitalise(text)


def _capitalise(text: str) -> str:
    """Upper-case the first letter of every sentence (after ". ", "! " and at the start)."""
    out, upper = [], True
    for i, ch in enumerate(text):
        if upper and ch.isalpha():
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
        if ch in ".!" and text[i + 1:i + 2] in (" ", ""):
            upper = True
    return "".join(out)


def _review(rng: random.Random, label: str) -> str | None:
    """One review of 8-60 words (most 15-40), or None when the draw falls outside that range."""
    product = rng.choice(PRODUCTS)
    sentences = [_opinion(rng, label, product)]
    target = rng.triangular(WORDS[0], WORDS[1], 14)
    n_words = len(sentences[0].split())
    for filler in rng.sample(FILLERS, len(FILLERS)):
        if n_words >= target or n_words + len(filler.split()) > WORDS[1]:
            break
        if filler.startswith("It ") and rng.random() < 0.5:
            filler = f"The {product} " + filler[3:]
        sentences.insert(rng.randrange(len(sentences) + 1), filler)
        n_words += len(filler.split())
    text = " ".join(sentences)
    return text if WORDS[0] <= len(text.split()) <= WORDS[1] else None


# ---- splits ------------------------------------------------------------------------------------------

def _quota(n: int) -> list[str]:
    """``n`` labels in the class shares (rounding goes to the largest classes first)."""
    counts = {k: int(n * share) for k, share in CLASS_SHARES.items()}
    for k in list(CLASS_SHARES)[: n - sum(counts.values())]:
        counts[k] += 1
    return [k for k in CLASS_SHARES for _ in range(counts[k])]


def _split(rng: random.Random, n: int, seen: set[str], first_id: int) -> list[dict]:
    """``n`` rows {"id", "text", "label"} in random class order, texts not in ``seen``."""
    labels = _quota(n)
    rng.shuffle(labels)
    rows = []
    for label in labels:
        text = None
        while text is None or text in seen:
            text = _review(rng, label)
        seen.add(text)
        rows.append({"id": f"r{first_id + len(rows):05d}", "text": text, "label": label})
    return rows


def _add_noise(rng: random.Random, rows: list[dict]) -> int:
    """Give ``NOISE`` of the rows another label; return how many."""
    k = round(NOISE * len(rows))
    for i in sorted(rng.sample(range(len(rows)), k)):
        rows[i]["label"] = rng.choice([x for x in LABELS if x != rows[i]["label"]])
    return k


def _csv_bytes(rows: list[dict], columns: tuple[str, ...]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r[c] for c in columns])
    return buf.getvalue().encode("utf-8")


# ---- files and manifest --------------------------------------------------------------------------------

def _params(seed: int, n_train: int, n_dev: int, n_test: int) -> dict:
    return {"version": CLF_DEMO_VERSION, "seed": seed, "sizes": {"train": n_train, "dev": n_dev, "test": n_test}}


def clf_demo_is_stale(out_dir: str | Path, seed: int = 0, n_train: int = 2000, n_dev: int = 400,
                      n_test: int = 400) -> bool:
    """True unless ``out_dir`` holds classification demo files of this version, seed and sizes, unmodified."""
    return is_stale(out_dir, MANIFEST, _params(seed, n_train, n_dev, n_test), SPLIT_FILES.values())


def generate_clf_demo(out_dir: str | Path, seed: int = 0, n_train: int = 2000, n_dev: int = 400,
                      n_test: int = 400, force: bool = False) -> dict[str, Path]:
    """Write the review demo files to ``out_dir``; return {"train", "dev", "test", "test_gold",
    "manifest"} -> path. Skips the work when the files are already there (see
    :func:`clf_demo_is_stale`) unless ``force``.
    """
    out_dir = Path(out_dir)
    paths = {k: out_dir / v for k, v in SPLIT_FILES.items()} | {"manifest": out_dir / MANIFEST}
    if not force and not clf_demo_is_stale(out_dir, seed, n_train, n_dev, n_test):
        return paths
    rng, seen = random.Random(f"harness-clf-demo-{CLF_DEMO_VERSION}-{seed}"), set()
    train = _split(rng, n_train, seen, 0)
    dev = _split(rng, n_dev, seen, n_train)
    test = _split(rng, n_test, seen, n_train + n_dev)
    noisy = _add_noise(rng, train)
    full = ("id", "text", "label")
    blobs = {"train.csv": _csv_bytes(train, full), "dev.csv": _csv_bytes(dev, full),
             "test.csv": _csv_bytes(test, ("id", "text")), "test_gold.csv": _csv_bytes(test, full)}
    write_generated(out_dir, blobs, MANIFEST, {**_params(seed, n_train, n_dev, n_test), "noisy_train_labels": noisy})
    return paths


if __name__ == "__main__":  # python -m harness.tasks.clf.demo OUT_DIR [SEED]
    import sys

    for key, value in generate_clf_demo(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0).items():
        print(f"{key}: {value}")
