"""The command line: help for every flag, errors without tracebacks, run/sweep/report end to end."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sevenprune import cli
from sevenprune.tasks.demo import DEMO

from _fake_mr import fake_mr

REPO = Path(__file__).resolve().parents[1]




@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    with fake_mr(root, sentences=80, test_size=16, seed=2) as (bert, cache):
        yield {"model": str(bert), "cache": str(cache), "root": root}


def _flags(env):
    return ["--task", "mr", "--model", env["model"], "--cache-dir", env["cache"], "--max-steps", "4",
            "--batch-size", "8", "--max-length", "32", "--no-progress", "--no-save-model"]


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_flag_has_help():
    parser = cli.build_parser()
    subs = _subparsers(parser)
    assert {"run", "sweep", "report", "demo", "list"} <= set(subs)
    for name, sub in subs.items():
        for action in sub._actions:
            assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest} has no help"


def test_help_explains_the_method_aliases(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for text in ("--sparsity", "--start-step", "--prune-steps", "--max-steps", "--seed", "--out", "--preset",
                 "seven_pre (= seven, start_step 0, prune_steps 100)", "seven_dyn"):
        assert text in out


@pytest.mark.parametrize("argv, message", [
    (["run", "--task", "glue9"], "invalid choice: 'glue9' (choose from 'mr', 'cola'"),
    (["run", "--method", "sevn", "--sparsity", "0.5"], "unknown method 'sevn'; choose one of ['dense'"),
    (["run", "--method", "seven", "--sparsity", "1.5"], "got 1.5"),
    (["run", "--method", "seven", "--sparsity", "0.5", "--model", "./no/such/model"],
     "model path './no/such/model' does not exist; choose one of ['minilm', 'vit-scratch', 'smollm2']"),
    (["run", "--method", "seven", "--sparsity", "0.5", "--preset", "fast"], "invalid choice: 'fast'"),
    (["sweep", "--methods", "seven", "mag", "--sparsities", "0.5"], "unknown method 'mag'"),
    (["report", "/no/such/sweep"], "'/no/such/sweep' is not a directory"),
])
def test_errors_name_the_value_and_exit_2_without_traceback(argv, message, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_console_script_error_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "sevenprune.cli", "run", "--method", "seven",
                           "--sparsity", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "sparsity must be a fraction in (0, 1)" in proc.stderr and "Traceback" not in proc.stderr


def test_run_then_refuse_to_overwrite(env, capsys):
    out = env["root"] / "r1"
    argv = ["run", *_flags(env), "--method", "seven_dyn", "--sparsity", "0.5", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "sparsity 0.5000 of the prunable weights" in printed and str(out) in printed
    # --no-save-model: the summary names what was written, and no model/ directory
    assert "(result.json, metrics.jsonl, config.json, pruner/)" in printed and not (out / "model").exists()
    result = json.loads((out / "result.json").read_text())
    assert result["method"] == "seven_dyn" and result["library_method"] == "seven"
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["start_step"] == 0 and config["resolved"]["prune_steps"] == 2  # 10% / 60% of 4
    assert cli.main(argv) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert cli.main(argv + ["--overwrite"]) == 0


def test_preset_values_and_explicit_flags_are_written(env):
    out = env["root"] / "r-preset"
    argv = ["run", *_flags(env), "--preset", "paper", "--method", "seven", "--sparsity", "0.3",
            "--start-step", "0", "--prune-steps", "2", "--out", str(out)]
    assert cli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "paper" and config["lr"] == 2e-5 and config["epochs"] == 10 and config["seed"] == 3404
    assert config["sparsity"] == 0.3 and config["batch_size"] == 8 and config["resolved"]["max_steps"] == 4


def test_window_too_long_is_a_cli_error(env, capsys):
    argv = ["run", *_flags(env), "--method", "seven", "--sparsity", "0.5", "--start-step", "3",
            "--prune-steps", "5", "--out", str(env["root"] / "r2")]
    assert cli.main(argv) == 2
    assert "does not fit in max_steps 4" in capsys.readouterr().err


def test_method_options_reach_the_method(env, capsys):
    argv = ["run", *_flags(env), "--method", "seven", "--sparsity", "0.5", "--method-option", "beta1=0.5",
            "--method-option", "moments=signed", "--out", str(env["root"] / "r3")]
    assert cli.main(argv) == 0
    config = json.loads((env["root"] / "r3" / "config.json").read_text())
    assert config["method_options"] == {"beta1": 0.5, "moments": "signed"}
    assert cli.main([*argv[:-1], str(env["root"] / "r4"), "--method-option", "nonsense=1"]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_sweep_from_toml_then_report(env, capsys):
    out = env["root"] / "sw"
    cfg = env["root"] / "sweep.toml"
    cfg.write_text('methods = ["dense", "magnitude"]\nsparsities = [0.25, 0.5]\nseeds = [3]\n')
    assert cli.main(["sweep", "--config", str(cfg), *_flags(env), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| method | 25% | 50% |" in printed and str(out / "curve.png") in printed
    table = (out / "report.md").read_text()
    (out / "report.md").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == table
    assert cli.main(["report", str(out), "--metric", "nope"]) == 2
    assert "has no metric 'nope'" in capsys.readouterr().err


def test_demo_file_matches_the_builtin_demo():
    assert json.loads((REPO / "experiments" / "demo.json").read_text()) == DEMO
    assert DEMO["task"] == "mr" and DEMO["model"] == "minilm"
    assert {"dense", "seven_dyn", "platon", "magnitude"} == set(DEMO["methods"]) and len(DEMO["sparsities"]) == 2


def test_export_is_wired_when_available(capsys):
    pytest.importorskip("sevenprune.export")
    with pytest.raises(SystemExit) as e:
        cli.main(["export", "--help"])
    assert e.value.code == 0 and "export" in capsys.readouterr().out


def test_list_shows_tasks_methods_models(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fashion_mnist" in out and "seven_pre (= seven" in out and "minilm" in out
    # the patterns line comes from the registry: FORCE (init_patterns = ("unstructured",)) is the exception
    assert "N:M (2:4, 4:8) with every method except force (unstructured only); heads" in out


def test_docs_and_help_agree_with_the_tool(capsys):
    """docs/cli.md and the --help texts name every method, task and export format the tool has."""
    from sevenprune.tasks.run import method_choices
    from sevenprune.tasks.loading import TASKS
    from sevenprune.export import FORMATS

    docs = (REPO / "docs" / "cli.md").read_text()
    helps = {}
    for command in ("run", "export"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        helps[command] = " ".join(capsys.readouterr().out.split())
    for method in method_choices():
        assert f"`{method}`" in docs, method
        assert method in helps["run"], method
    for task in TASKS:
        assert f"`{task}`" in docs, task
        assert task in helps["run"], task
    assert "--format dense|compressed|structured" in docs
    for fmt in FORMATS:
        assert fmt in helps["export"]


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--sparsity", "half"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err == ("sevenprune run: error: argument --sparsity: invalid float value: 'half' "
                   "(see sevenprune run --help)\n")


def test_a_programming_error_is_not_disguised_as_bad_input(monkeypatch):
    # a TypeError inside the tool is a bug: it must surface as a traceback, not as exit 2 "bad input"
    from sevenprune import cli

    def broken(args):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setitem(cli._COMMANDS, "list", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        cli.main(["list"])


def test_every_run_option_has_a_flag_and_reaches_the_config():
    import dataclasses

    from sevenprune.tasks.run import RunConfig

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    assert fields <= {a.dest for a in subparsers.choices["run"]._actions}
    args = parser.parse_args(["run", "--method", "magnitude", "--sparsity", "0.5", "--mask-interval", "3",
                              "--state-dtype", "bfloat16", "--scope", "local", "--no-progress"])
    assert cli._explicit(args) == {"method": "magnitude", "sparsity": 0.5, "mask_interval": 3,
                                   "state_dtype": "bfloat16", "scope": "local", "progress": False}
