"""Every table, verdict and plot of docs/results.md, docs/results/archive.md and README.md's results, rebuilt
from committed files only.

One module per protocol turns its committed runs (docs/results/<protocol>/) into named blocks:
``results_R`` (protocol R and pruning early), ``results_S`` (the fine-tuning strategies), ``results_V``
(images), ``results_L`` (decoder LMs: one-shot pruning against pruning during fine-tuning),
``results_archive`` (the superseded 32-step protocols); ``results_summary`` writes the page's
opening summary and the README's glance from the paired records they commit; ``results_common`` holds
what they share. Each block of a page (between ``<!-- BEGIN name -->`` and ``<!-- END name -->``) is
replaced; the prose around the blocks is left as it is. From the repository root (a fresh clone
rebuilds the same bytes):

    python experiments/results/make_results.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import results_archive
import results_L
import results_R
import results_S
import results_summary
import results_V
from results_common import IMG, ROOT, load_runs, main_table, replace_block

DOC = ROOT / "docs" / "results.md"
ARCHIVE = ROOT / "docs" / "results" / "archive.md"
README = ROOT / "README.md"


def readme_blocks() -> dict[str, str]:
    """README.md's generated blocks: protocol R's main table and four sentences with their intervals.
    Fast (reads result.json files and the committed paired records; no bootstrap)."""
    return {"R_table": main_table(load_runs(results_R.DYN_SWEEPS), results_R.DYN_ORDER),
            "glance": results_summary.readme_glance()}


def write_page(page: Path, blocks: dict[str, str]) -> list[str]:
    """Replace every block of ``blocks`` that the page has; returns the names it does not have."""
    text = page.read_text(encoding="utf-8")
    missing = []
    for name, body in blocks.items():
        if f"<!-- BEGIN {name} -->" in text:
            text = replace_block(text, name, body, where=str(page.relative_to(ROOT)))
        else:
            missing.append(name)
    page.write_text(text, encoding="utf-8")
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    IMG.mkdir(parents=True, exist_ok=True)
    # the protocol modules first: they write the paired records the summaries are generated from
    blocks = results_R.blocks() | results_S.blocks() | results_V.blocks() | results_L.blocks()
    blocks["summary"] = results_summary.page_summary()
    readme = readme_blocks()
    for name in write_page(README, readme):
        raise SystemExit(f"README.md has no block {name!r}")
    # R_table is the README's; the page shows the same table inside R_main, with its run count and plot
    for name in write_page(DOC, {k: v for k, v in blocks.items() if k != "R_table"}):
        print(f"note: docs/results.md has no block {name!r}; skipped", file=sys.stderr)
    for name in write_page(ARCHIVE, results_archive.blocks()):
        print(f"note: docs/results/archive.md has no block {name!r}; skipped", file=sys.stderr)
    print("updated docs/results.md, docs/results/archive.md and README.md's results; plots in docs/img/results_*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
