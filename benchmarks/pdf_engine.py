"""The compliance PDF's time per participant and peak memory, this tree's engine against a
baseline tree's (the WeasyPrint layout of an earlier commit), on seeded SQLite files.

    git archive ad93a6b | tar -x -C /tmp/tracker-baseline    # the last WeasyPrint commit
    python -m benchmarks.pdf_engine --participants 100 1000 --baseline /tmp/tracker-baseline

Each size is seeded once into ``--folder`` (``tracker bench seed``, SQLite, never a shared
server). Each run is ``tracker report compliance --format pdf`` in a child process with the
tree's code first on ``PYTHONPATH``; its wall time and its peak RSS (``getrusage`` of the
child) are measured by a wrapper process, so nothing of this script counts. The figures are
printed as a Markdown table and written as JSON beside the databases.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pikepdf

ROOT = Path(__file__).resolve().parent.parent

# Runs the command line of the tree first on sys.path (the venv's ``tracker`` script would
# import whichever tree the venv was installed from).
CLI = "import sys; from tracker.cli import main; sys.argv[0] = 'tracker'; main()"

WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
    "print(time.perf_counter() - start, peak, code)\n"
)


def _environment(tree: Path, database: Path, folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(tree),
        "TRACKER_DATABASE_URL": f"sqlite:///{database}",
        "TRACKER_INSTANCE_PATH": str(folder / "instance"),
    }


def seeded(folder: Path, participants: int) -> Path:
    """The SQLite file of ``participants`` generated participants, seeded on first use."""
    database = folder / f"pdf-bench-{participants}.db"
    if not database.exists():
        print(f"seeding {participants} participants into {database} …", file=sys.stderr)
        subprocess.run(  # noqa: S603
            [
                sys.executable,
                "-c",
                CLI,
                "bench",
                "seed",
                "--participants",
                str(participants),
                "--database-url",
                f"sqlite:///{database}",
            ],
            env=_environment(ROOT, database, folder),
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return database


def measure(tree: Path, database: Path, folder: Path, output: Path) -> tuple[float, float, int]:
    """Seconds, peak RSS (MB) and pages of the compliance PDF made by ``tree``'s code."""
    command = [sys.executable, "-c", CLI, "report", "compliance", "--format", "pdf"]
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", WRAPPER, *command, "-o", str(output)],
        env=_environment(tree, database, folder),
        cwd=tree,  # "-c" puts the working directory first on sys.path
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    seconds, peak, code = float(out[0]), float(out[1]), out[2]
    if code != "0":
        raise SystemExit(f"{tree}: the report failed ({code})")
    with pikepdf.open(output) as pdf:
        pages = len(pdf.pages)
    return seconds, peak, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--baseline", type=Path, help="a tree with the engine to compare with")
    parser.add_argument(
        "--baseline-up-to",
        type=int,
        default=1000,
        help="measure the baseline only up to this many participants (it is slow)",
    )
    parser.add_argument("--folder", type=Path, default=Path("/tmp/tracker-pdf-bench"))  # noqa: S108
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)

    trees = [("this tree", ROOT)]
    if args.baseline is not None:
        trees.append(("baseline", args.baseline.resolve()))
    figures = []
    for participants in args.participants:
        database = seeded(args.folder, participants)
        for name, tree in trees:
            if name == "baseline" and participants > args.baseline_up_to:
                continue
            output = args.folder / f"report-{name.replace(' ', '-')}-{participants}.pdf"
            seconds, peak, pages = measure(tree, database, args.folder, output)
            figures.append(
                {
                    "engine": name,
                    "participants": participants,
                    "seconds": round(seconds, 2),
                    "seconds_per_participant": round(seconds / participants, 4),
                    "peak_rss_mb": round(peak, 1),
                    "pages": pages,
                    "output": str(output),
                }
            )
            print(json.dumps(figures[-1]), file=sys.stderr)

    print("| engine | participants | pages | seconds | s / participant | peak RSS |")
    print("|---|---|---|---|---|---|")
    for f in figures:
        print(
            f"| {f['engine']} | {f['participants']:,} | {f['pages']:,} | {f['seconds']:.1f} | "
            f"{f['seconds_per_participant']:.4f} | {f['peak_rss_mb']:.0f} MB |"
        )
    (args.folder / "pdf-engine.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
