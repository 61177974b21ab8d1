"""Hugging Face's ``postprocess_qa_predictions``, restated on the harness ``Windows`` (tests and benchmarks only).

The algorithm is that of ``examples/pytorch/question-answering/utils_qa.py`` in
huggingface/transformers (``postprocess_qa_predictions``, the start/end-logits variant), rewritten
here in our own code for the harness data layout: a window's ``offsets[w]`` row plays the part of
HF's ``offset_mapping`` (``-1`` there is HF's ``None``: not a context token), ``example_index``
replaces HF's ``example_id`` column and the logits are [n_windows, L] float32 arrays. It is the
*peer* the harness decoder is measured against, so it stays the plain Python loop HF writes:

* per window, the ``n_best_size`` largest start logits (``np.argsort(...)[-1:-n-1:-1]``, i.e.
  argsort order, descending) are paired with the ``n_best_size`` largest end logits;
* a pair is skipped when an index is out of range, is not a context token, ``end < start``, or
  ``end - start + 1 > max_answer_length``; otherwise it is a candidate
  ``(offsets[start][0], offsets[end][1])`` scored ``start_logit + end_logit`` (float32, as HF);
* the null score of an example is the minimum over its windows of ``start[cls] + end[cls]``
  (HF reads position 0, the CLS token of the right-padded BERT-style models it runs; the harness
  records that position in ``cls_index``, which is 0 for them);
* with SQuAD v2 (``null_threshold`` given) the null candidate (offsets ``(0, 0)``) joins the
  candidates; all candidates of an example (every window, duplicates included: HF does not merge
  identical character spans) are sorted by descending score with Python's stable ``sorted``, and
  the first ``n_best_size`` kept; the null candidate is appended back when it fell off;
* when nothing is left, or only one candidate whose text is ``""``, the fake answer ``"empty"``
  (score 0) is put first;
* v1: the answer is the first candidate's text. v2: the first candidate with non-empty text is the
  best non-null one; ``score_diff = null_score - start_logit - end_logit`` and the answer is ``""``
  when ``score_diff > null_threshold``.

The softmax "probability" HF adds to each n-best entry is left out (it changes no answer). One
departure forced by the data: HF would crash on a v2 example without any window (its null
candidate is ``None``); here such an example simply has no null candidate.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def postprocess_qa_predictions(windows, examples, start_logits, end_logits, n_best_size=20, max_answer_length=30,
                               null_threshold=None, with_score_diff=False):
    """HF's post-processing of window logits into answers.

    Returns ``(answers, nbest)``: ``answers`` is ``{example id: text}``; ``nbest`` is
    ``{example id: [(text, char_start, char_end, score), ...]}`` in HF's n-best order (the null
    candidate is ``("", 0, 0, null_score)``, the fake ``"empty"`` one ``("empty", -1, -1, 0.0)``).
    ``null_threshold=None`` is SQuAD v1 (``version_2_with_negative=False``); a number switches
    to v2 with that ``null_score_diff_threshold``. With ``with_score_diff`` a third dict
    ``{example id: score_diff}`` (v2 only, else empty) is returned as well.
    """
    all_start_logits = np.asarray(start_logits, dtype=np.float32)
    all_end_logits = np.asarray(end_logits, dtype=np.float32)
    if len(all_start_logits) != len(windows) or len(all_end_logits) != len(windows):
        raise ValueError(f"got {len(all_start_logits)} and {len(all_end_logits)} logit rows for {len(windows)} windows")
    version_2_with_negative = null_threshold is not None

    windows_per_example = defaultdict(list)
    for w, i in enumerate(windows.example_index.tolist()):
        windows_per_example[i].append(w)

    all_predictions, all_nbest, scores_diff = {}, {}, {}
    for example_index, example in enumerate(examples):
        min_null_prediction = None
        prelim_predictions = []
        for w in windows_per_example[example_index]:
            start_row = all_start_logits[w]
            end_row = all_end_logits[w]
            offset_mapping = [tuple(o) if o[0] >= 0 else None for o in windows.offsets[w].tolist()]
            cls = int(windows.cls_index[w])

            feature_null_score = start_row[cls] + end_row[cls]
            if min_null_prediction is None or min_null_prediction["score"] > feature_null_score:
                min_null_prediction = {"offsets": (0, 0), "score": feature_null_score,
                                       "start_logit": start_row[cls], "end_logit": end_row[cls]}

            start_indexes = np.argsort(start_row)[-1: -n_best_size - 1: -1].tolist()
            end_indexes = np.argsort(end_row)[-1: -n_best_size - 1: -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if (start_index >= len(offset_mapping) or end_index >= len(offset_mapping)
                            or offset_mapping[start_index] is None or offset_mapping[end_index] is None):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    prelim_predictions.append({
                        "offsets": (offset_mapping[start_index][0], offset_mapping[end_index][1]),
                        "score": start_row[start_index] + end_row[end_index],
                        "start_logit": start_row[start_index],
                        "end_logit": end_row[end_index],
                    })
        if version_2_with_negative and min_null_prediction is not None:
            prelim_predictions.append(min_null_prediction)
            null_score = min_null_prediction["score"]

        predictions = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[:n_best_size]
        if (version_2_with_negative and min_null_prediction is not None
                and not any(p["offsets"] == (0, 0) for p in predictions)):
            predictions.append(min_null_prediction)

        context = example.context
        for pred in predictions:
            c0, c1 = pred["offsets"]
            pred["text"] = context[c0:c1]
        if len(predictions) == 0 or (len(predictions) == 1 and predictions[0]["text"] == ""):
            predictions.insert(0, {"offsets": (-1, -1), "text": "empty", "start_logit": 0.0, "end_logit": 0.0,
                                   "score": 0.0})

        if not version_2_with_negative or min_null_prediction is None:
            all_predictions[example.id] = predictions[0]["text"]
        else:
            i = 0
            while predictions[i]["text"] == "":
                i += 1
            best_non_null = predictions[i]
            score_diff = null_score - best_non_null["start_logit"] - best_non_null["end_logit"]
            scores_diff[example.id] = float(score_diff)
            all_predictions[example.id] = "" if score_diff > null_threshold else best_non_null["text"]
        all_nbest[example.id] = [(p["text"], int(p["offsets"][0]), int(p["offsets"][1]), float(p["score"]))
                                 for p in predictions]
    if with_score_diff:
        return all_predictions, all_nbest, scores_diff
    return all_predictions, all_nbest
