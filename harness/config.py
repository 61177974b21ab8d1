"""One typed, validated configuration per run: recipe defaults + task defaults + ``--set`` -> ``RunConfig``.

The parameters are grouped the way Hugging Face's argument dataclasses group them
(``TrainingArguments`` / ``DataTrainingArguments``):

* :class:`TrainingArgs` -- the optimiser, schedule, batches, precision and stopping;
* :class:`WindowArgs` -- how examples become model rows (QA windows; classification uses only
  ``max_length``);
* :class:`DecodingArgs` -- how QA logits become answers (tuned on saved logits by a search);
* :class:`ModelArgs` -- what a scratch recipe builds (its tokenizer's vocabulary size).

Parameter names are unique across groups, so users address them flat (``--set doc_stride=64``,
a recipe's ``[defaults]``, a search space). :func:`resolve` layers, in order: the fields'
defaults, the task kind's defaults, the recipe's defaults, the recipe's defaults for the task kind,
then the overrides; every layer is checked here, before any model is built: an unknown key, a
value of the wrong type or out of range is refused with one line naming the key, the value, where
it came from and what is allowed. The result is frozen, passed down as is (``cfg.windows.doc_stride``
goes straight into the tokenizer call) and saved in the run folder (:meth:`RunConfig.to_dict`).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from harness.common.errors import HarnessError
from harness.common.names import unknown_hint


def _p(default, kind: type, help: str, *, optional: bool = False, lo=None, hi=None, lo_open: bool = False,
       choices: tuple | None = None):
    return field(default=default, metadata={"kind": kind, "optional": optional, "lo": lo, "hi": hi,
                                            "lo_open": lo_open, "choices": choices, "help": help})


@dataclass(frozen=True)
class TrainingArgs:
    lr: float = _p(3e-5, float, "peak learning rate (AdamW, linear warm-up then linear decay)", lo=0, lo_open=True)
    epochs: int = _p(2, int, "passes over the training rows", lo=1)
    batch_size: int = _p(16, int, "training rows per step (per process)", lo=1)
    eval_batch_size: int = _p(64, int, "rows per prediction batch", lo=1)
    grad_accum: int = _p(1, int, "steps of gradients accumulated per optimiser step", lo=1)
    warmup_ratio: float = _p(0.1, float, "share of the optimiser steps spent warming up", lo=0, hi=1)
    weight_decay: float = _p(0.01, float, "AdamW weight decay (not on biases and norms)", lo=0)
    max_grad_norm: float = _p(1.0, float, "gradient clipping norm (0: no clipping)", lo=0)
    seed: int = _p(42, int, "seed of the initialisation, shuffling and windows", lo=0)
    length_pool: int = _p(50, int, "training batches per length-sorted pool (rows of similar length share a "
                          "batch, less padding); 0: random batches, as Trainer", lo=0)
    patience: int = _p(0, int, "stop after this many epochs without a better dev score (0: never)", lo=0)
    mixed_precision: str = _p("auto", str, "auto (bf16 where the GPU has it, else fp16 on GPU; bf16 on a CPU "
                              "with AMX, else none), no, fp16 or bf16", choices=("auto", "no", "fp16", "bf16"))
    compile: bool = _p(False, bool, "torch.compile the model (dynamic shapes; pays compile time on the first steps)")
    max_steps: int = _p(0, int, "stop after this many optimiser steps (0: no limit)", lo=0)


@dataclass(frozen=True)
class WindowArgs:
    max_length: int = _p(384, int, "tokens per row (QA window or classification text)", lo=8)
    doc_stride: int = _p(128, int, "QA: tokens shared by consecutive windows of a context", lo=0)
    max_query_length: int = _p(64, int, "QA: question tokens kept", lo=1)
    max_offset: int | None = _p(None, int, "QA training: one window per answer, shifted by up to this many tokens "
                                "(HW7's variant; None: sliding windows)", optional=True, lo=0)
    split_chars: bool | None = _p(None, bool, "QA: one token per character (None: on for Chinese)", optional=True)


@dataclass(frozen=True)
class DecodingArgs:
    max_answer_length: int = _p(30, int, "QA: longest answer, in tokens", lo=1)
    n_best: int = _p(20, int, "QA: candidate answers kept per question", lo=1)
    null_threshold: float | None = _p(None, float, "QA (SQuAD v2): answer '' when null score - best score exceeds "
                                      "this (None: always answer)", optional=True)


@dataclass(frozen=True)
class ModelArgs:
    vocab_size: int = _p(4000, int, "scratch recipes: WordPiece vocabulary size", lo=100)


GROUPS: dict[str, type] = {"training": TrainingArgs, "windows": WindowArgs, "decoding": DecodingArgs,
                           "model": ModelArgs}
SPECS: dict[str, tuple[str, Any]] = {f.name: (group, f) for group, cls in GROUPS.items() for f in fields(cls)}
PARAMS: tuple[str, ...] = tuple(SPECS)
# what users coming from Hugging Face scripts type, for the "did you mean" hint
ALIASES = {"learning_rate": "lr", "num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size",
           "train_batch_size": "batch_size", "per_device_eval_batch_size": "eval_batch_size",
           "gradient_accumulation_steps": "grad_accum", "max_seq_length": "max_length", "stride": "doc_stride",
           "n_best_size": "n_best", "warmup": "warmup_ratio", "lerning_rate": "lr", "bf16": "mixed_precision",
           "fp16": "mixed_precision", "num_epochs": "epochs"}


def describe(name: str) -> str:
    """What parameter ``name`` accepts, in words: 'an integer >= 1', 'a number in [0, 1]', ..."""
    f = SPECS[name][1]
    m = f.metadata
    if m["choices"]:
        what = "one of " + ", ".join(map(str, m["choices"]))
    elif m["kind"] is bool:
        what = "True or False"
    else:
        what = "an integer" if m["kind"] is int else "a number"
        lo, hi = m["lo"], m["hi"]
        if lo is not None and hi is not None:
            what += f" in [{lo}, {hi}]"
        elif lo is not None:
            what += f" {'>' if m['lo_open'] else '>='} {lo}"
    return what + (" or None" if m["optional"] else "")


def check_value(name: str, value, source: str = "--set"):
    """``value`` converted to parameter ``name``'s type, or one HarnessError naming key, value, source and
    what is allowed."""
    if name not in SPECS:
        near = ALIASES.get(str(name).lower())
        raise HarnessError(f"{source}: unknown parameter '{name}'",
                           hint=(f"did you mean '{near}'? " if near else "") + unknown_hint(name, PARAMS, "parameters"))
    f = SPECS[name][1]
    m = f.metadata
    bad = HarnessError(f"{source}: {name}={value!r} is not allowed ({f.metadata['help']})",
                       hint=f"{name} must be {describe(name)}")
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if m["optional"]:
            return None
        raise bad
    kind = m["kind"]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise bad
    if kind is str:
        if not isinstance(value, str) or (m["choices"] and value not in m["choices"]):
            raise bad
        return value
    if isinstance(value, bool):
        raise bad
    if kind is int:
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if not isinstance(value, int):
            raise bad
    else:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        value = float(value)
    lo, hi = m["lo"], m["hi"]
    if lo is not None and (value < lo or (m["lo_open"] and value == lo)):
        raise bad
    if hi is not None and value > hi:
        raise bad
    return value


def check_params(params: Mapping, source: str) -> dict:
    """Every entry of ``params`` checked (:func:`check_value`); the converted dict."""
    if not isinstance(params, Mapping):
        raise HarnessError(f"{source}: expected a table of parameters, got {type(params).__name__}")
    return {k: check_value(k, v, source) for k, v in params.items()}


@dataclass(frozen=True)
class RunConfig:
    """Everything a run is trained and decoded with (frozen; saved as ``config.json``'s groups)."""

    recipe: str
    checkpoint: str
    task: str
    lang: str
    metric: str
    training: TrainingArgs = field(default_factory=TrainingArgs)
    windows: WindowArgs = field(default_factory=WindowArgs)
    decoding: DecodingArgs = field(default_factory=DecodingArgs)
    model: ModelArgs = field(default_factory=ModelArgs)

    def flat(self) -> dict:
        """Every parameter by its (unique) name."""
        return {k: v for group in GROUPS for k, v in asdict(getattr(self, group)).items()}

    def with_params(self, params: Mapping, source: str = "--set") -> RunConfig:
        """A copy with ``params`` (flat names) replaced, each checked."""
        checked = check_params(params, source)
        groups = {g: replace(getattr(self, g), **{k: v for k, v in checked.items() if SPECS[k][0] == g})
                  for g in GROUPS}
        return replace(self, **groups)

    def to_dict(self) -> dict:
        return {"recipe": self.recipe, "checkpoint": self.checkpoint, "task": self.task, "lang": self.lang,
                "metric": self.metric, **{g: asdict(getattr(self, g)) for g in GROUPS}}

    @classmethod
    def from_dict(cls, d: Mapping) -> RunConfig:
        """From :meth:`to_dict` (or a run folder of the previous format: a flat ``params`` dict)."""
        base = cls(recipe=str(d.get("recipe", "")), checkpoint=str(d.get("checkpoint", "")),
                   task=str(d.get("task", "qa")), lang=str(d.get("lang", "zh")),
                   metric=str(d.get("metric") or (d.get("params") or {}).get("metric") or "em"))
        if "training" in d:
            flat = {k: v for g in GROUPS for k, v in (d.get(g) or {}).items()}
        else:
            flat = {k: v for k, v in (d.get("params") or {}).items() if k in SPECS}
        return base.with_params(flat, "config.json")


def resolve(recipe, task, *, lang: str, metric: str, overrides: Mapping | None = None,
            source: str = "--set") -> RunConfig:
    """``recipe`` (a :class:`~harness.recipes.Recipe`) for ``task`` (a task object): field defaults <-
    the task's ``param_defaults`` <- ``recipe.defaults`` <- ``recipe.task_defaults[task.kind]`` <-
    ``overrides`` (from ``source``), each layer checked; then the task's own cross-checks
    (``task.check_config``)."""
    cfg = RunConfig(recipe=recipe.name, checkpoint=recipe.checkpoint, task=task.kind, lang=lang, metric=metric)
    layers = [(task.param_defaults, f"task {task.kind} defaults"),
              (recipe.defaults, f"recipe {recipe.name} [defaults]"),
              (recipe.task_defaults.get(task.kind, {}), f"recipe {recipe.name} [task_defaults.{task.kind}]"),
              (overrides or {}, source)]
    for params, where in layers:
        cfg = cfg.with_params(params, where)
    task.check_config(cfg)
    return cfg


def field_default(name: str):
    f = SPECS[name][1]
    return f.default if f.default is not MISSING else None


def parse_overrides(pairs) -> dict:
    """``["lr=3e-5", "epochs=3", "max_offset=None"]`` -> ``{key: Python literal, else the string}``; the
    values are checked by :func:`resolve`."""
    import ast

    out = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise HarnessError(f"--set expects key=value, got '{pair}'", hint="e.g. --set lr=3e-5")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = raw.strip()
    return out
