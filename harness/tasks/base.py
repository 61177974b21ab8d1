"""The task kinds: what every kind must provide, and the registry that maps a competition's
``task`` to one.

The training loop, search, submission, scoring and the leaderboard are shared; they ask the
task object for everything that differs between kinds, through exactly the members of
:class:`Task`, and never look at the kind string. A new kind is one class implementing this
protocol plus ``register_task(MyTask())``: no shared module changes (``tests/test_task_protocol.py``
builds a toy third kind that way).

Tasks never import the leaderboard (and the board never imports a task): a task turns predictions
into per-example statistics (:meth:`Task.board_stats`, in the language of :mod:`harness.scores`)
and the submit verb hands those to the board.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from harness.common.errors import HarnessError
from harness.common.names import unknown_hint


@dataclass(frozen=True)
class DemoSpec:
    """A built-in demo competition of a task kind (``harness demo --task KIND``)."""

    name: str  # workspace-relative name, e.g. "demo"
    generate: Callable  # generate(out_dir, seed=...) -> {"train", "dev", "test", "test_gold"} paths
    layout: str
    lang: str


@runtime_checkable
class Task(Protocol):
    """Every member the shared code calls. Types: ``examples`` are the kind's example objects (each
    with ``id`` and ``labelled``), ``rows`` its encoded model input (``input_ids`` [n, L], ``lengths``
    [n], optional ``token_type_ids``, ``label_arrays()`` -> the model's target names), ``logits``
    its per-split model output object (with ``example_ids``), ``info`` the label information fixed
    by the training data, ``cfg`` a :class:`~harness.config.RunConfig`."""

    kind: str  # the competition.toml ``task`` value
    unit: str  # "questions", "examples": what a row of a score counts
    layouts: tuple[str, ...]  # file layouts ``read`` takes (first: the default when none is given)
    read_options: frozenset[str]  # reader options a competition may set (competition.toml [options])
    fold_rule: str  # how ``folds`` keeps examples together, in words ("grouped by paragraph")
    metric_names: tuple[str, ...]  # every metric a competition of this kind may rank by
    default_metric: str
    submission_columns: tuple[str, str]  # the CSV header: (id column, answer/label column)
    param_defaults: Mapping[str, Any]  # defaults on top of the configuration's own
    unused_params: frozenset[str]  # parameters this kind ignores (never searched)
    decoding_params: frozenset[str]  # tuned on saved logits by a search, never sampled
    ensemble_options: Mapping[str, tuple]  # option -> allowed values (first is the default)
    model_class: str  # the ``transformers`` auto class of the head

    # ---- data
    def read(self, location: str, layout: str, **options) -> list: ...
    def detect_layout(self, path: str) -> str: ...
    def texts(self, examples: Sequence) -> list[str]: ...  # tokenizer training text, language detection
    def label_info(self, examples: Sequence) -> dict: ...
    def reference(self, example) -> str: ...  # a labelled example's gold answer or label, as shown to users
    def metrics(self, info: Mapping) -> tuple[str, ...]: ...  # scored for this label set
    def head(self, info: Mapping) -> dict: ...  # ``from_pretrained`` keyword arguments of the head
    def check_config(self, cfg) -> None: ...  # cross-parameter checks, HarnessError

    # ---- rows and logits
    def encode(self, tokenizer, examples: Sequence, cfg, train: bool, info: Mapping, cache_dir=None): ...
    def predict(self, model, rows, info: Mapping, batch_size: int, accelerator=None, progress: bool = False): ...
    def evaluate(self, logits, examples: Sequence, cfg, info: Mapping) -> dict: ...  # metrics + "predictions"
    def save_logits(self, path, logits, meta: Mapping): ...
    def load_logits(self, path): ...
    def merge_folds(self, parts: Sequence, example_ids: list[str], meta: Mapping): ...
    def folds(self, examples: Sequence, k: int, seed: int, splits: Sequence[str] | None = None): ...
    def tune_decoding(self, logits, examples: Sequence, cfg, space: Mapping, metric: str) -> dict | None: ...

    # ---- ensembles, scores, the board
    def ensemble(self, members: Sequence, examples: Sequence, weights, cfg, options: Mapping) -> dict: ...
    def fit_weights(self, members: Sequence, examples: Sequence, metric: str, method: str, cfg,
                    options: Mapping) -> tuple: ...
    def score(self, preds: Mapping, examples: Sequence, info: Mapping) -> dict: ...
    def board_stats(self, preds: Mapping, examples: Sequence, info: Mapping): ...  # (Scheme, ids, stats) | None
    def score_file(self, path, gold: Sequence, id_column: str, answer_column: str, info: Mapping | None = None): ...
    def demo(self) -> DemoSpec: ...


_BUILTIN = {"qa": ("harness.tasks.qa.task", "QATask"),
            "classification": ("harness.tasks.clf.task", "ClassificationTask")}
_REGISTRY: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Make ``task`` available under ``task.kind`` (a competition.toml ``task`` value)."""
    missing = [name for name in _members() if not hasattr(task, name)]
    if missing:
        raise TypeError(f"task {getattr(task, 'kind', task)!r} lacks {', '.join(missing)} (see harness.tasks.base.Task)")
    _REGISTRY[task.kind] = task
    return task


def _members() -> list[str]:
    return sorted(set(Task.__annotations__) | {n for n, v in vars(Task).items()
                                                if callable(v) and not n.startswith("_")})


def task_kinds() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*_BUILTIN, *_REGISTRY]))


def get_task(kind: str) -> Task:
    if kind not in _REGISTRY and kind in _BUILTIN:
        module, name = _BUILTIN[kind]
        register_task(getattr(importlib.import_module(module), name)())
    if kind not in _REGISTRY:
        raise HarnessError(f"unknown task kind '{kind}'", hint=unknown_hint(str(kind), task_kinds(), "task kinds"))
    return _REGISTRY[kind]
