"""Which cells of the protocols of docs/results.md have no committed run yet, and the sweep commands
that make exactly those.

A sweep resumes from its own runs folder; on a machine whose folder does not hold the earlier runs
(they were made elsewhere, and only their summaries are committed), a plain ``sevenprune sweep`` would
make every run again. This lists, per configuration, the runs missing from ``docs/results/<protocol>/`` and
prints one ``sevenprune sweep --config ... --methods ... --seeds N`` line per configuration and seed, the
lowest seeds first, so that an interrupted set leaves every method at the earlier seeds:

    python experiments/results/todo.py                 # counts, then the commands
    python experiments/results/todo.py R_pre50 S_lr80  # only these configurations
    python experiments/results/todo.py --tsv L_ft50    # for scripts: config<TAB>seed<TAB>methods, nothing else
    python experiments/results/todo.py --runs /work/sweepL/runs/results L_ft50  # and which missing runs have
                                                       # a checkpoint there to go on from, at which step
    python experiments/results/todo.py --committed EMPTY_FOLDER L_ft50  # as if nothing were committed
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sevenprune.tasks.checkpoint import checkpoint_paths
from sevenprune.tasks.report import arm_of_run
from sevenprune.tasks.sweep import expand

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "experiments" / "results"
COMMITTED = ROOT / "docs" / "results"  # one folder per protocol: docs/results/R/R_dyn80, docs/results/S/...
# protocol R, the strategy study (protocol R with one factor changed), the ViT protocol, the decoder LMs
STUDIES = ("R", "S", "V", "L")
SEARCH = "S_lr_dense"  # the dense learning-rate search, whose runs are the optimizer factor's dense cells


def configs(names: list[str] | None = None) -> list[Path]:
    """The sweep configurations of every protocol (``R/R_dyn80.json``, ...), or those named."""
    found = [p for study in STUDIES for p in sorted((CONFIGS / study).glob(f"{study}_*.json"))]
    if names:
        unknown = sorted(set(names) - {p.stem for p in found})
        if unknown:
            raise SystemExit(f"todo: no configuration {', '.join(unknown)} under {CONFIGS}/<protocol> "
                             f"(have: {', '.join(p.stem for p in found)})")
        found = [p for p in found if p.stem in names]
    return found


def missing(config: Path, committed: Path | None = None) -> list[tuple[int, str, str]]:
    """``(seed, method, run name)`` of every run of ``config`` without a committed result.json (under
    ``committed``/<protocol>, default docs/results/<protocol>)."""
    committed = COMMITTED if committed is None else committed
    spec = json.loads(config.read_text(encoding="utf-8"))
    sweep = Path(spec["out"]).name
    protocol = sweep.split("_", 1)[0]
    out = []
    for name, opts in expand(spec):
        search = _search_name(opts)
        if _made(committed / protocol / sweep / name) or (search and _made(committed / "S" / SEARCH / search)):
            continue
        method = arm_of_run(name, opts)
        out.append((int(opts["seed"]), method, name))
    return out


def _made(run: Path) -> bool:
    return (run / "result.json").exists()


def _search_name(opts: dict) -> str:
    """The search's name for a dense run at another optimizer's rate (``sgd_lr0.01-seed1``), else "": the
    study takes that run as its dense cell rather than making it twice (results_S.search_as_dense)."""
    if opts.get("method") != "dense" or opts.get("optimizer", "adamw") == "adamw":
        return ""
    return f"{opts['optimizer']}_lr{float(opts['lr']):g}-seed{opts['seed']}"


def sweeps(config: Path, todo: list[tuple[int, str, str]]) -> list[tuple[str, int, list[str]]]:
    """``(configuration path relative to the checkout, seed, methods)`` per seed, the lowest first, with the
    methods that seed lacks (in the configuration's order)."""
    rel = str(config.relative_to(ROOT))
    return [(rel, seed, list(dict.fromkeys(m for s, m, _ in todo if s == seed)))
            for seed in sorted({s for s, _, _ in todo})]


def in_progress(config: Path, todo: list[tuple[int, str, str]], runs: Path) -> list[str]:
    """``L_ft50/platon-s0.5-seed3: step 150 of 268`` for each missing run of ``config`` that has a
    checkpoint under ``runs/<sweep>/runs/<run>`` (a sweep started again goes on from there): the newest one,
    which a resumed run keeps in the hidden folder beside it that it writes into, as the resume finds it."""
    sweep = Path(json.loads(config.read_text(encoding="utf-8"))["out"]).name
    found = []
    for _, _, name in todo:
        steps, unreadable = [], []
        for state in (path / "state.json" for path in checkpoint_paths(runs / sweep / "runs" / name)):
            if not state.is_file():
                continue
            try:
                saved = json.loads(state.read_text(encoding="utf-8"))
                steps.append((int(saved["loop"]["step"]), int(saved["max_steps"])))
            except (OSError, ValueError, KeyError, TypeError) as exc:  # a checkpoint being written, or damaged
                unreadable.append(f"{sweep}/{name}: checkpoint unreadable ({state}: {type(exc).__name__})")
        if steps:
            step, max_steps = max(steps)
            found.append(f"{sweep}/{name}: step {step} of {max_steps}")
        elif unreadable:
            found.append(unreadable[0])
    return found


def commands(config: Path, todo: list[tuple[int, str, str]]) -> list[str]:
    """One sweep command per seed with the methods that seed lacks (methods in the configuration's order)."""
    return [f"sevenprune sweep --config {rel} --methods {' '.join(methods)} --seeds {seed}"
            for rel, seed, methods in sweeps(config, todo)]


def tsv_lines(config: Path, todo: list[tuple[int, str, str]]) -> list[str]:
    """The same sweeps for a script to read (run_L.sh missing): ``config<TAB>seed<TAB>method method ...``,
    so that the script does not depend on how the human-readable commands are worded."""
    return [f"{rel}\t{seed}\t{' '.join(methods)}" for rel, seed, methods in sweeps(config, todo)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="configurations to list (default: all), e.g. R_pre50")
    parser.add_argument("--tsv", action="store_true",
                        help="print only the missing sweeps, one per line: config<TAB>seed<TAB>methods")
    parser.add_argument("--runs", type=Path, default=None,
                        help="the sweeps' runs folder (run_L.sh's RUNS): also list the missing runs that have a "
                             "checkpoint there, and its step")
    parser.add_argument("--committed", type=Path, default=None,
                        help=f"where the committed runs are, one folder per protocol (default: {COMMITTED}); "
                             "an empty folder lists every run")
    args = parser.parse_args(argv)
    if args.runs is not None and not args.runs.is_dir():  # a mistyped folder would read as "nothing started"
        raise SystemExit(f"todo: --runs {args.runs}: no such folder")
    if args.committed is not None and not args.committed.is_dir():  # likewise "nothing committed"
        raise SystemExit(f"todo: --committed {args.committed}: no such folder")
    if args.tsv:
        for config in configs(args.names):
            for line in tsv_lines(config, missing(config, args.committed)):
                print(line)
        return 0
    plan, started = [], []
    print("| configuration | runs committed | missing |")
    print("|---|---|---|")
    for config in configs(args.names):
        spec = json.loads(config.read_text(encoding="utf-8"))
        total = len(expand(spec))
        todo = missing(config, args.committed)
        print(f"| {config.stem} | {total - len(todo)} / {total} | {len(todo)} |")
        plan += commands(config, todo)
        if args.runs is not None:
            started += in_progress(config, todo, args.runs)
    if args.runs is not None:
        print()
        print("\n".join(["in progress (the sweep goes on from the checkpoint):", *started]) if started
              else f"no missing run has a checkpoint under {args.runs}")
    print()
    print("\n".join(plan) if plan else "every cell has a committed run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
