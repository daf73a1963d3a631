"""Benchmark: a head-only `dvc exp run` and the whole real-data `dvc repro`, with the feature
store against the code before it.

Two temporary copies of the project, one from ``--baseline`` (default: the commit before the
feature store was added) and one from this working tree, each run on the same real paintings
with the same parameters, each with its own empty DVC cache:

1. ``dvc repro leaderboard`` (ingest ... train@vgg16, train@style_stats, evaluate, leaderboard);
2. ``dvc exp run -S train.style_stats.l2=<other> leaderboard``: a head-only experiment.

Prints the wall times, the ratios (baseline / store) and the load average next to them. Long
on real data (the baseline extracts trunk features twice per run): start it with ``nice`` in the
background and keep the log. A head-only experiment's ratio grows with the dataset: each
baseline run passes every image through the trunk, the store none.

    nice -n 10 .venv/bin/python bench/feature_store.py --source ../shared/real-dev \\
        --min-paintings 100 --image-size 224 > bench-feature-store.log 2>&1 &
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FILES = ["dvc.yaml", "params.yaml", "pyproject.toml", "stages", "src", ".dvcignore"]


def sh(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def store_commit() -> str:
    """The parent of the commit that added the feature store: the code before it."""
    added = sh(
        "git", "log", "--diff-filter=A", "--format=%H", "--", "src/artist_id/features.py", cwd=REPO
    ).split()
    if not added:
        raise SystemExit("no commit adds src/artist_id/features.py: pass --baseline REV")
    return f"{added[-1]}~1"


def make_copy(root: Path, rev: str | None, params: dict[str, object]) -> Path:
    """A git + DVC repository holding the pipeline of ``rev`` (None: this working tree)."""
    root.mkdir(parents=True)
    if rev is None:
        for name in FILES:
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, root / name)
    else:
        archive = subprocess.run(
            ["git", "archive", rev, *FILES], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x"], cwd=root, input=archive, check=True)
    (root / ".dvc").mkdir()
    (root / ".dvc" / "config").write_text(
        f"[core]\n    analytics = false\n[cache]\n    dir = {root / '.cache'}\n"
    )
    (root / ".gitignore").write_text("__pycache__/\n/.cache/\n")
    raw = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in params.items():
        node = raw
        *parents, key = dotted.split(".")
        for part in parents:
            node = node[part]
        node[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    sh(*git, "init", "-q", cwd=root)
    sh(*git, "add", "-A", cwd=root)
    sh(*git, "commit", "-qm", "bench", cwd=root)
    return root


def timed_dvc(root: Path, *args: str) -> float:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root)])
    env["DVC_NO_ANALYTICS"] = "1"
    start = time.perf_counter()
    sh(str(Path(sys.executable).parent / "dvc"), *args, cwd=root, env=env)
    return time.perf_counter() - start


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if os.name == "posix" else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "real-dev"))
    parser.add_argument("--min-paintings", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--copies", type=int, default=2, help="augment.copies (the default: 2)")
    parser.add_argument("--l2", type=float, default=0.01, help="the head-only change")
    parser.add_argument(
        "--c",
        default="[0.01,0.1,1.0]",
        help="the store side's second head-only change: train.style_stats.c (its lbfgs head "
        "ignores l2, so the first experiment only re-runs the same fit)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, help="features.batch_size (4 at 512 px)"
    )
    parser.add_argument("--baseline", default=None, help="git revision before the store")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    args = parser.parse_args()
    source = Path(args.source).resolve()
    if not source.is_dir():
        raise SystemExit(f"{source} not found: pass --source (a folder in the Kaggle layout)")
    params: dict[str, object] = {
        "data.source": str(source),
        "select.min_paintings": args.min_paintings,
        "ingest.max_side": args.max_side,
        "base.image_size": args.image_size,
        "augment.copies": args.copies,
        "train.models": ["vgg16", "style_stats"],
    }
    baseline = args.baseline or store_commit()
    print(f"real data {source}, {params}")
    print(f"baseline {baseline} vs this working tree; load at start {load()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    times: dict[str, dict[str, float]] = {}
    try:
        for label, rev in (("baseline", baseline), ("store", None)):
            extra = {"features.batch_size": args.batch_size} if rev is None else {}
            root = make_copy(tmp / label, rev, {**params, **extra})
            repro = timed_dvc(root, "repro", "leaderboard")
            print(
                f"  {label:8s} dvc repro leaderboard   {repro:8.1f} s  (load {load()})", flush=True
            )
            # the run's dvc.lock and metrics (untracked in a new copy) become HEAD, from
            # which the experiment starts
            git = ["git", "-c", "user.name=b", "-c", "user.email=b@x"]
            sh(*git, "add", "-A", cwd=root)
            sh(*git, "commit", "-qm", "run", cwd=root)
            exp = timed_dvc(
                root, "exp", "run", "-S", f"train.style_stats.l2={args.l2}", "leaderboard"
            )
            print(f"  {label:8s} head-only dvc exp run  {exp:8.1f} s  (load {load()})", flush=True)
            times[label] = {"repro": repro, "exp": exp}
            if rev is None:
                exp_c = timed_dvc(
                    root, "exp", "run", "-S", f"train.style_stats.c={args.c}", "leaderboard"
                )
                print(f"  {label:8s} ... -S train.style_stats.c  {exp_c:6.1f} s  (load {load()})")
                times[label]["exp_c"] = exp_c
    finally:
        if args.keep:
            print(f"copies kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    b, s = times["baseline"], times["store"]
    print(f"head-only experiment: {b['exp'] / s['exp']:.1f}x faster with the store")
    print(f"  (with the C grid changed instead: {b['exp'] / s['exp_c']:.1f}x)")
    print(f"whole dvc repro:      {b['repro'] / s['repro']:.2f}x (baseline / store)")


if __name__ == "__main__":
    main()
