"""The encodings cache: hits return the same arrays without building, every key change misses,
broken files are rebuilt, concurrent writers leave one valid file, cleanup is bounded."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from harness import cache
from harness.tasks.clf.example import TextExample
from harness.tasks.qa.example import Example

ROOT = Path(__file__).resolve().parents[1]
KW = dict(max_length=32, doc_stride=8, max_query_length=8, with_labels=True, split_chars=True)
TEXTS = ["小明住在臺北。他喜歡貓，也喜歡狗。", "小華住在高雄，每天騎車去學校。", "臺北有一百零一大樓。"]


def _examples():
    out = []
    for i in range(12):
        ctx = TEXTS[i % 3] * (1 + i % 4)
        out.append(Example(f"q{i}", "誰住在臺北？" if i % 2 else "他喜歡什麼？", ctx, (ctx[2:4],), (2,)))
    return out


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    from tokenizers import BertWordPieceTokenizer

    d = tmp_path_factory.mktemp("vocab")
    for name, extra in (("a", []), ("b", ["貓頭鷹飛過山谷", "雨後彩虹"])):  # b: another vocabulary
        wp = BertWordPieceTokenizer(handle_chinese_chars=True)
        wp.train_from_iterator(TEXTS + ["誰住在臺北？他喜歡什麼？"] + extra, vocab_size=200 + 20 * len(extra),
                               min_frequency=1, show_progress=False)
        (d / name).mkdir()
        wp.save_model(str(d / name))
    return d


def _tok(vocab_dir, name="a", **kwargs):
    from transformers import BertTokenizerFast

    return BertTokenizerFast(str(vocab_dir / name / "vocab.txt"), **kwargs)  # v5: positional vocab path


def assert_same_windows(a, b):
    for k in ("input_ids", "token_type_ids", "lengths", "offsets", "example_index", "cls_index",
              "start_positions", "end_positions"):
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None) == (y is None), k
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), k
    assert a.example_ids == b.example_ids


class Builds:
    """Counts make_windows / encode_texts calls made by the cache."""

    def __init__(self, monkeypatch):
        import harness.tasks.clf.encode as enc
        import harness.tasks.qa.windows as win

        self.n = 0
        for module, name in ((win, "make_windows"), (enc, "encode_texts")):
            real = getattr(module, name)

            def counted(*a, _real=real, **k):
                self.n += 1
                return _real(*a, **k)

            monkeypatch.setattr(module, name, counted)


def test_hit_returns_equal_arrays_without_building(tmp_path, vocab_dir, monkeypatch):
    from harness.tasks.qa.windows import make_windows

    tok, exs = _tok(vocab_dir), _examples()
    direct = make_windows(tok, exs, **KW)
    builds = Builds(monkeypatch)
    first = cache.cached_windows(tmp_path, tok, exs, **KW)
    again = cache.cached_windows(tmp_path, tok, exs, **KW)
    assert builds.n == 1
    assert_same_windows(first, direct)
    assert_same_windows(again, direct)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]
    # cache_dir=None: no caching, no files
    assert_same_windows(cache.cached_windows(None, tok, exs, **KW), direct)
    assert builds.n == 2


def test_fingerprint_ignores_the_truncation_state_calls_leave_behind(vocab_dir):
    tok = _tok(vocab_dir)
    before = cache.tokenizer_fingerprint(tok)
    tok(["誰"], ["小明住在臺北"], truncation="only_second", max_length=8, stride=2, return_overflowing_tokens=True,
        padding="max_length")
    assert tok.backend_tokenizer.truncation is not None  # the call left its settings on the backend
    assert cache.tokenizer_fingerprint(tok) == before
    assert cache.tokenizer_fingerprint(_tok(vocab_dir)) == before  # a fresh load of the same files


def _changed(ex: Example, **fields) -> Example:
    return Example(**{**{k: getattr(ex, k) for k in ("id", "question", "context", "answers", "answer_starts")},
                      **fields})


def test_every_key_change_misses(tmp_path, vocab_dir, monkeypatch):
    tok, exs = _tok(vocab_dir), _examples()
    builds = Builds(monkeypatch)
    cache.cached_windows(tmp_path, tok, exs, **KW)
    one = exs[3]
    variants = {
        "max_length": (tok, exs, {**KW, "max_length": 40}),
        "doc_stride": (tok, exs, {**KW, "doc_stride": 6}),
        "max_query_length": (tok, exs, {**KW, "max_query_length": 5}),
        "split_chars": (tok, exs, {**KW, "split_chars": False}),
        "with_labels": (tok, exs, {**KW, "with_labels": False}),
        "max_offset": (tok, exs, {**KW, "max_offset": 2}),
        "one context character": (tok, exs[:3] + [_changed(one, context="大" + one.context[1:])] + exs[4:], KW),
        "question": (tok, exs[:3] + [_changed(one, question="誰？")] + exs[4:], KW),
        "answer start": (tok, exs[:3] + [_changed(one, answer_starts=(3,), answers=(one.context[3:5],))] + exs[4:], KW),
        "id": (tok, exs[:3] + [_changed(one, id="other")] + exs[4:], KW),
        "order": (tok, exs[::-1], KW),
        "fewer examples": (tok, exs[:-1], KW),
        "another vocabulary": (_tok(vocab_dir, "b"), exs, KW),
        "padding side": (_tok(vocab_dir, padding_side="left"), exs, KW),
        "no token types": (_tok(vocab_dir, model_input_names=["input_ids", "attention_mask"]), exs, KW),
    }
    paths = {cache.entry_path(tmp_path, cache.windows_key(tok, exs, **KW))}
    for name, (t, e, kw) in variants.items():
        n = builds.n
        cache.cached_windows(tmp_path, t, e, **kw)
        assert builds.n == n + 1, f"{name}: hit"
        paths.add(cache.entry_path(tmp_path, cache.windows_key(t, e, **kw)))
    assert len(paths) == len(variants) + 1
    # an added token changes the tokenizer's state, hence the key
    added = _tok(vocab_dir)
    added.add_tokens(["臺北"])
    assert cache.tokenizer_fingerprint(added) != cache.tokenizer_fingerprint(tok)
    # the HW7 variant: a new seed is a new draw
    hw7 = {**KW, "max_offset": 2}
    n = builds.n
    cache.cached_windows(tmp_path, tok, exs, **{**hw7, "seed": 5})
    assert builds.n == n + 1


def test_parameters_that_cannot_change_the_windows_share_an_entry(tmp_path, vocab_dir, monkeypatch):
    tok, exs = _tok(vocab_dir), _examples()
    builds = Builds(monkeypatch)
    cache.cached_windows(tmp_path, tok, exs, **KW, seed=1)
    cache.cached_windows(tmp_path, tok, exs, **KW, seed=2)  # sliding windows draw nothing
    hw7 = {**KW, "max_offset": 0}
    cache.cached_windows(tmp_path, tok, exs, **hw7, seed=1)
    cache.cached_windows(tmp_path, tok, exs, **{**hw7, "doc_stride": 3}, seed=2)  # no stride, no draws
    assert builds.n == 2


@pytest.mark.parametrize("damage", ["truncated", "flipped bytes", "empty", "not a zip", "another key"])
def test_broken_files_are_rebuilt_not_fatal(tmp_path, vocab_dir, monkeypatch, damage):
    from harness.tasks.qa.windows import make_windows

    tok, exs = _tok(vocab_dir), _examples()
    key = cache.windows_key(tok, exs, **KW)
    path = cache.entry_path(tmp_path, key)
    cache.cached_windows(tmp_path, tok, exs, **KW)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped bytes":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64]) + data[mid + 64:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not a zip":
        path.write_bytes(b"garbage" * 100)
    else:  # a valid file holding another key's windows
        other = _examples()[:2]
        cache.store_entry(path, cache.windows_key(tok, other, **KW), make_windows(tok, other, **KW).to_arrays())
    assert cache.load_entry(path, key) is None
    builds = Builds(monkeypatch)
    got = cache.cached_windows(tmp_path, tok, exs, **KW)
    assert builds.n == 1
    assert_same_windows(got, make_windows(tok, exs, **KW))
    assert cache.load_entry(path, key) is not None  # rewritten whole
    cache.cached_windows(tmp_path, tok, exs, **KW)
    assert builds.n == 1


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from transformers import BertTokenizerFast
    sys.path.insert(0, {tests!r})
    from test_cache import KW, _examples, assert_same_windows
    from harness import cache
    from harness.tasks.qa.windows import make_windows

    cache_dir, vocab, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    tok = BertTokenizerFast(vocab)
    exs = _examples()
    want = make_windows(tok, exs, **KW)
    key = cache.windows_key(tok, exs, **KW)
    path = cache.entry_path(cache_dir, key)
    while not go.exists():
        time.sleep(0.01)
    seen = 0
    for _ in range(25):
        assert cache.store_entry(path, key, want.to_arrays())
        arrays = cache.load_entry(path, key)
        assert arrays is not None, "a reader saw a partial file"
        assert_same_windows(type(want).from_arrays(arrays), want)
        assert_same_windows(cache.cached_windows(cache_dir, tok, exs, **KW), want)
        seen += 1
    print("ok", seen)
""")


@pytest.mark.slow
def test_concurrent_writers_leave_one_valid_file(tmp_path, vocab_dir):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(ROOT / "tests")))
    cache_dir, go = tmp_path / "encodings", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(script), str(cache_dir), str(vocab_dir / "a" / "vocab.txt"), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert out.strip() == "ok 25"
    files = sorted(p.name for p in cache_dir.iterdir())
    assert len(files) == 1 and files[0].endswith(".npz"), files  # no temporary files left behind
    from harness.tasks.qa.windows import make_windows

    tok, exs = _tok(vocab_dir), _examples()
    arrays = cache.load_entry(cache_dir / files[0], cache.windows_key(tok, exs, **KW))
    assert_same_windows(type(make_windows(tok, exs, **KW)).from_arrays(arrays), make_windows(tok, exs, **KW))


def test_unwritable_cache_still_returns_windows(tmp_path, vocab_dir):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    tok, exs = _tok(vocab_dir), _examples()
    w = cache.cached_windows(blocker / "encodings", tok, exs, **KW)  # mkdir fails: no cache, no crash
    assert len(w) > 0


def test_prune_drops_old_then_least_recently_used_and_only_cache_files(tmp_path, vocab_dir):
    tok, exs = _tok(vocab_dir), _examples()
    entries = []
    for n in (4, 6, 8, 10):
        cache.cached_windows(tmp_path, tok, exs[:n], **KW)
        entries.append(cache.entry_path(tmp_path, cache.windows_key(tok, exs[:n], **KW)))
    assert sorted(entries) == sorted(tmp_path.glob("*.npz"))
    now = time.time()
    ages = dict(zip(entries, (5000, 3000, 6000, 10)))
    for p, age in ages.items():
        os.utime(p, (now - age, now - age))
    stale = tmp_path / f".{entries[0].name}.abc.tmp"
    stale.write_bytes(b"x")
    os.utime(stale, (now - 2 * cache.STALE_TEMP_S,) * 2)
    fresh = tmp_path / f".{entries[1].name}.def.tmp"  # a writer at work
    fresh.write_bytes(b"x")
    mine = tmp_path / "notes.npz"
    mine.write_bytes(b"user file")
    # a hit makes an entry recent again (entries[2], 6000 s old, becomes the newest and survives)
    cache.cached_windows(tmp_path, tok, exs[:8], **KW)
    assert entries[2].stat().st_mtime > now - 5
    out = cache.prune_cache(tmp_path, max_age_s=4000, now=now)
    assert out["removed"] == 2 and not stale.exists() and fresh.exists()  # the 5000 s old entry and the stale temp
    remaining = [p for p in entries if p.exists()]
    assert len(remaining) == 3
    sizes = {p: p.stat().st_size for p in remaining}
    # size bound: drop least recently used first (the 3000 s one), keep the rest
    bound = sum(sizes.values()) - 1
    out = cache.prune_cache(tmp_path, max_bytes=bound, now=now)
    assert out["removed"] == 1 and not entries[1].exists() and entries[2].exists() and entries[3].exists()
    assert out["kept"] == 2 and out["kept_bytes"] <= bound
    assert mine.exists() and fresh.exists()
    assert cache.prune_cache(tmp_path / "absent", max_bytes=0)["removed"] == 0


def test_cached_texts_hits_and_misses(tmp_path, vocab_dir, monkeypatch):
    from harness.tasks.clf.encode import encode_texts

    tok = _tok(vocab_dir)
    exs = [TextExample(str(i), TEXTS[i % 3], TEXTS[(i + 1) % 3] if i % 2 else None, label=str(i % 2))
           for i in range(9)]
    builds = Builds(monkeypatch)
    a = cache.cached_texts(tmp_path, tok, exs, 16, labels=["0", "1"])
    b = cache.cached_texts(tmp_path, tok, exs, 16, labels=["0", "1"])
    assert builds.n == 1
    want = encode_texts(tok, exs, 16, labels=["0", "1"])
    for got in (a, b):
        for k in ("input_ids", "token_type_ids", "lengths", "labels"):
            assert getattr(got, k).dtype == getattr(want, k).dtype and np.array_equal(getattr(got, k), getattr(want, k))
        assert got.example_ids == want.example_ids
    reg = [TextExample(ex.id, ex.text, ex.text_pair, label=float(i) / 3) for i, ex in enumerate(exs)]
    for args in ((exs, 12, ["0", "1"]), (exs, 16, ["1", "0"]), (exs, 16, False),
                 (exs[:4] + [TextExample("4", TEXTS[0] + "。", label="0")] + exs[5:], 16, ["0", "1"]),
                 (reg, 16, None)):
        n = builds.n
        got = cache.cached_texts(tmp_path, tok, args[0], args[1], labels=args[2])
        assert builds.n == n + 1
        assert (got.labels is None) == (args[2] is False)
    assert cache.cached_texts(tmp_path, tok, reg, 16, labels=None).labels.dtype == np.float32
    assert builds.n == n + 1


def test_arrays_round_trip_through_npz(tmp_path, vocab_dir):
    from harness.tasks.clf.encode import Encoded
    from harness.tasks.qa.windows import Windows, make_windows

    tok = _tok(vocab_dir, model_input_names=["input_ids", "attention_mask"])
    w = make_windows(tok, _examples(), **KW)
    assert w.token_type_ids is None
    np.savez(tmp_path / "w.npz", **w.to_arrays())
    with np.load(tmp_path / "w.npz", allow_pickle=False) as z:
        assert_same_windows(Windows.from_arrays(z), w)
    e = Encoded(np.ones((2, 3), np.int32), None, np.array([3, 2], np.int32), None, ["a", "b"])
    back = Encoded.from_arrays(e.to_arrays())
    assert back.token_type_ids is None and back.labels is None and back.example_ids == ["a", "b"]
