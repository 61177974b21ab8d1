"""Install the GPU kit's wheels that this Python lacks, offline, into a folder for ``PYTHONPATH``.

    python3 bench/gpu/install.py work/gpu-kit/wheels --target /tmp/bench-gpu-site

A kit wheel is installed when its distribution is not installed here, or when the installed
version does not satisfy a requirement of another kit wheel (e.g. datasets' ``dill<0.4.2``);
otherwise the installed one is kept (the image's packages are not shadowed). The chosen wheels go
through ``pip install --no-index --no-deps --target`` (nothing is fetched, the image's site-packages
is left alone). Then every requirement of the kit's wheels is checked against what is importable
(the target included) and the ones that are missing or of the wrong version are printed as
``MISSING:`` / ``CONFLICT:`` lines (e.g. ``pyarrow``, which the kit cannot hold, for ``datasets``).
Exits 0 unless pip itself fails: the suite goes on and each step reports what it could not import.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from gather import normalise, wheel_metadata  # noqa: E402 -- stdlib-only, beside this file


def wheel_info(path: Path):
    """(normalised name, version, Requires-Dist lines) of a wheel."""
    name, version, requires = wheel_metadata(path)
    return normalise(name), version, requires


def installed_versions(extra_paths: list[str]) -> dict[str, str]:
    out = {}
    for dist in metadata.distributions(path=extra_paths + sys.path):
        name = dist.metadata["Name"]
        if name:
            out.setdefault(normalise(name), dist.version)
    return out


def main(argv=None) -> int:
    try:
        from packaging.requirements import Requirement
        from packaging.tags import sys_tags
        from packaging.utils import parse_wheel_filename
        from packaging.version import Version
    except ImportError:  # a bare Python: pip's own copy
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.tags import sys_tags
        from pip._vendor.packaging.utils import parse_wheel_filename
        from pip._vendor.packaging.version import Version

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wheels", type=Path, help="the kit's wheels folder")
    p.add_argument("--target", type=Path, required=True, help="install folder (put it on PYTHONPATH)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be installed")
    args = p.parse_args(argv)

    supported = set(sys_tags())
    kit = {}  # name -> (path, version, requires)
    for w in sorted(args.wheels.glob("*.whl")):
        _, _, _, tags = parse_wheel_filename(w.name)
        if not tags & supported:
            continue  # another Python version's wheel
        name, version, requires = wheel_info(w)
        kit[name] = (w, version, requires)
    if not kit:
        print(f"install: no wheel for this Python in {args.wheels}")
        return 0
    have = installed_versions([str(args.target)])
    reqs = []
    for name, (_, _, requires) in kit.items():
        for line in requires:
            r = Requirement(line)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                reqs.append((name, r))

    chosen = {n for n in kit if n not in have}
    changed = True
    while changed:  # an installed version too old (or new) for a kit wheel: take the kit's, if it fits
        changed = False
        for owner, r in reqs:
            n = normalise(r.name)
            if n in kit and n not in chosen and n in have and not r.specifier.contains(Version(have[n]), True):
                if r.specifier.contains(Version(kit[n][1]), True):
                    chosen.add(n)
                    changed = True
    for n in sorted(kit):
        state = "install" if n in chosen else f"keep installed {have.get(n)}"
        print(f"install: {n} {kit[n][1]}: {state}")
    if chosen and not args.dry_run:
        args.target.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
               "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(args.target),
               *[str(kit[n][0]) for n in sorted(chosen)]]
        proc = subprocess.run(cmd)
        if proc.returncode:
            print(f"install: pip failed (exit {proc.returncode})")
            return proc.returncode
    after = installed_versions([str(args.target)])
    if args.dry_run:
        after.update({n: kit[n][1] for n in chosen})
    missing, conflicts = {}, []
    for owner, r in reqs:
        n = normalise(r.name)
        if n not in after:
            missing.setdefault(r.name if n not in missing else n, []).append(f"{owner} ({r})")
        elif not r.specifier.contains(Version(after[n]), True):
            conflicts.append(f"{r.name} {after[n]} does not satisfy {owner}'s {r}")
    for name, owners in missing.items():
        print(f"install: MISSING: {name}, required by {', '.join(owners)}")
    for line in conflicts:
        print(f"install: CONFLICT: {line}")
    bad = len(missing) + len(conflicts)
    print(f"install: {'would install' if args.dry_run else 'installed'} {len(chosen)} wheel(s) into {args.target}; "
          f"{bad} unmet requirement(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
