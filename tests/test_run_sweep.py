"""`run` on a tiny random BERT writes sane files; sweeps resume; `report` rebuilds the same table."""

import json
import os

import pytest
import torch

import sevenprune as sp
from sevenprune.tasks.report import build_report, collect_results, markdown_table
from sevenprune.tasks.run import RunExistsError, plan_schedule, resolve_config, run, RunConfig
from sevenprune.tasks.sweep import expand, load_sweep_file, sweep

from _fake_mr import fake_mr




@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny BERT and a fake vader sdist (120 sentences, 24 held out) in a cache directory."""
    root = tmp_path_factory.mktemp("env")
    with fake_mr(root, sentences=120, test_size=24, seed=1) as (bert, cache):
        yield {"model": str(bert), "cache_dir": str(cache), "root": root}


def _opts(env, **kw):
    base = {"task": "mr", "model": env["model"], "cache_dir": env["cache_dir"], "max_steps": 8,
            "batch_size": 8, "lr": 1e-3, "max_length": 32, "progress": False}
    return {**base, **kw}


def test_run_writes_every_file_with_sane_values(env):
    out = env["root"] / "run-seven"
    cfg = resolve_config(_opts(env, method="seven", sparsity=0.5, start_step=2, prune_steps=4, eval_every=4,
                               diagnostics=True))
    result = run(cfg, out, log=lambda *a: None)
    for name in ("config.json", "metrics.jsonl", "result.json", "pruner/pruner.json",
                 "pruner/pruner.safetensors", "model/model.safetensors", "model/config.json"):
        assert (out / name).exists(), name
    saved = json.loads((out / "result.json").read_text())
    assert saved == json.loads(json.dumps(result))
    for key in ("task", "model", "method", "target_sparsity", "sparsity", "model_sparsity", "metrics", "seconds"):
        assert key in saved
    assert saved["task"] == "mr" and saved["method"] == "seven" and saved["target_sparsity"] == 0.5
    # exactly round(0.5 * N) of the prunable weights, and they are exactly zero
    assert saved["sparsity"] == pytest.approx(0.5, abs=1e-9)
    assert saved["zero_fraction"] == pytest.approx(0.5, abs=1e-3)
    assert 0 < saved["model_sparsity"] < saved["sparsity"]  # embeddings, biases, head are not pruned
    assert 0.0 <= saved["metrics"]["accuracy"] <= 1.0 and set(saved["metrics"]) == {"accuracy", "f1", "mcc"}
    assert saved["seconds"] > 0 and saved["steps"] == 8 and saved["eval_examples"] == {"test": 24}
    assert saved["train_examples"] == 120 - 12 - 24  # 12 zero scores dropped
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [4, 8]
    assert lines[-1]["accuracy"] == saved["metrics"]["accuracy"] and lines[-1]["sparsity"] == saved["sparsity"]
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["start_step"] == 2 and config["resolved"]["prune_steps"] == 4
    assert set(saved["layers"]) and all(0 <= v <= 1 for v in saved["layers"].values())
    # per-example predictions of the final model: their accuracy is the reported one
    import numpy as np

    with np.load(out / "predictions.npz") as preds:
        assert preds["test.pred"].shape == preds["test.label"].shape == (24,)
        assert float((preds["test.pred"] == preds["test.label"]).mean()) == pytest.approx(
            saved["metrics"]["accuracy"])
    assert config["code"]["version"] == sp.__version__
    # the cost of pruning and the sentinel diagnostics
    assert saved["window_steps"] == 4 and 0 < saved["pruner_seconds"] < saved["window_seconds"]
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["method"] == "seven" and diag["snapshots"] and diag["snapshots"][0]["noise_discount"]

    # the saved model is pruned where the saved masks say so, and the state reloads
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    weights = load_file(str(out / "model" / "model.safetensors"))
    model = AutoModelForSequenceClassification.from_pretrained(str(out / "model"))
    pruner = sp.load_state(out / "pruner", model)
    assert pruner.sparsity() == pytest.approx(0.5, abs=1e-9)
    for name, mask in pruner.masks.items():
        assert torch.all(weights[name][~mask] == 0)

    with pytest.raises(RunExistsError, match="already holds a finished run"):
        run(cfg, out)


def test_dense_run_has_no_pruner(env):
    out = env["root"] / "run-dense"
    result = run(resolve_config(_opts(env, method="dense", max_steps=4, save_model=False)), out)
    assert result["sparsity"] == 0.0 and result["target_sparsity"] == 0.0 and not (out / "pruner").exists()
    assert not (out / "model").exists()


def test_run_records_the_machine_it_ran_on_and_the_load_meanwhile(env, monkeypatch):
    """result.json["machine"]: the processor and threads of this process, the run's start and end between the
    test's own clock readings, and the mean and max of the load samples taken (one when the run starts, one
    before it writes its result: a run shorter than the 30 s interval has exactly these two)."""
    from datetime import datetime, timezone

    from sevenprune.tasks import machine

    loads = iter([1.5, 2.75, 100.0])  # the third, when the monitor is left, comes after result.json
    monkeypatch.setattr(machine, "_load_1min", lambda: next(loads))
    before = datetime.now(timezone.utc).replace(microsecond=0)
    result = run(resolve_config(_opts(env, method="dense", max_steps=2, save_model=False)),
                 env["root"] / "run-machine", log=lambda *a: None)
    after = datetime.now(timezone.utc)
    m = result["machine"]
    assert m["load_1min"] == {"mean": 2.125, "max": 2.75, "samples": 2, "interval_s": 30.0}
    started, finished = datetime.fromisoformat(m["started_utc"]), datetime.fromisoformat(m["finished_utc"])
    assert before <= started <= finished <= after and started.utcoffset().total_seconds() == 0
    assert m["logical_cpus"] == os.cpu_count() and m["torch_threads"] == torch.get_num_threads()
    assert m["torch"] == torch.__version__ and isinstance(m["cpu"], str) and m["cpu"]
    # the CPU time the process got over the run's wall time, per thread (a busy machine lowers it)
    assert 0 < m["cpu_seconds"] and 0 < m["wall_seconds"] <= (after - before).total_seconds() + 1
    # The share is computed from the unrounded seconds, which are recorded to 3 decimals: a run of a few hundredths
    # of a second (a fast CPU) moves the ratio of the recorded values by far more than the share's own rounding.
    cpu, wall, threads = m["cpu_seconds"], m["wall_seconds"], m["torch_threads"]
    low, high = (cpu - 5e-4) / ((wall + 5e-4) * threads), (cpu + 5e-4) / (max(wall - 5e-4, 1e-9) * threads)
    assert low - 5e-5 <= m["cpu_share"] <= high + 5e-5
    saved = json.loads((env["root"] / "run-machine" / "result.json").read_text())
    assert saved["machine"] == m


def test_load_monitor_samples_every_interval_until_it_is_left():
    """The daemon thread samples every interval while the monitor is entered, and stops when it is left (no
    sample after __exit__'s own)."""
    import threading
    import time

    from sevenprune.tasks.machine import LoadMonitor

    reads: list[float] = []
    three_periodic = threading.Event()

    def read() -> float:
        reads.append(float(len(reads)))
        if len(reads) >= 4:  # the entry sample and three from the thread
            three_periodic.set()
        return reads[-1]

    with LoadMonitor(read=read, interval=0.01) as load:
        assert three_periodic.wait(10)
    taken = len(reads)
    time.sleep(0.05)
    assert len(reads) == taken  # the thread has stopped
    summary = load.summary()
    assert summary["samples"] == taken and summary["max"] == taken - 1
    assert summary["mean"] == pytest.approx((taken - 1) / 2)
    assert LoadMonitor(read=lambda: None).summary() is None  # a platform without a load average
    with pytest.raises(ValueError, match="interval must be positive"):
        LoadMonitor(interval=0)


def test_init_method_prunes_before_training(env):
    result = run(resolve_config(_opts(env, method="snip", sparsity=0.3, max_steps=3, save_model=False)),
                 env["root"] / "run-snip")
    assert result["sparsity"] == pytest.approx(0.3, abs=1e-4) and result["start_step"] == 0


def test_window_that_does_not_fit_is_an_error():
    with pytest.raises(ValueError, match="does not fit in max_steps 50"):
        plan_schedule(RunConfig(method="seven", sparsity=0.5, max_steps=50, start_step=40, prune_steps=20), 100)


def test_schedule_defaults_and_aliases():
    p = plan_schedule(RunConfig(method="seven_pre", sparsity=0.5, max_steps=300), 1000)
    assert (p["library_method"], p["start_step"], p["prune_steps"]) == ("seven", 0, 100)
    p = plan_schedule(RunConfig(method="seven_dyn", sparsity=0.5, epochs=2, batch_size=10), 1000)
    assert (p["max_steps"], p["start_step"], p["prune_steps"]) == (200, 20, 120)
    with pytest.raises(ValueError, match="prunes from step 0"):
        plan_schedule(RunConfig(method="seven_pre", sparsity=0.5, max_steps=300, start_step=5), 1000)
    with pytest.raises(ValueError, match="does not fit"):  # SEVEN_pre's K = 100 needs 100 steps
        plan_schedule(RunConfig(method="seven_pre", sparsity=0.5, max_steps=50), 1000)


def test_preset_and_explicit_flags():
    cfg = resolve_config({"task": "mrpc", "preset": "paper", "method": "seven", "batch_size": 16})
    assert (cfg.start_step, cfg.prune_steps, cfg.sparsity, cfg.lr, cfg.batch_size, cfg.epochs) == (300, 600, 0.5, 2e-5, 16, 10)
    assert resolve_config({"task": "mrpc", "preset": "paper", "method": "seven", "sparsity": 0.8}).sparsity == 0.8
    with pytest.raises(ValueError, match="unknown preset 'fast'; choose one of \\['paper'\\]"):
        resolve_config({"task": "mrpc", "preset": "fast", "method": "seven", "sparsity": 0.5})


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match=r"unknown method 'sevn'; choose one of \['dense'"):
        resolve_config({"method": "sevn", "sparsity": 0.5})
    with pytest.raises(ValueError, match="got 1.2"):
        resolve_config({"method": "seven", "sparsity": 1.2})
    with pytest.raises(ValueError, match="needs --sparsity"):
        resolve_config({"method": "magnitude"})
    with pytest.raises(ValueError, match="does not prune"):
        resolve_config({"method": "dense", "sparsity": 0.5})
    with pytest.raises(ValueError, match="model path '/no/such/dir' does not exist"):
        resolve_config({"method": "seven", "sparsity": 0.5, "model": "/no/such/dir"})


def test_sweep_resumes_without_redoing_finished_runs(env):
    out = env["root"] / "sweep"
    spec = {**_opts(env, max_steps=6, save_model=False), "methods": ["dense", "seven", "magnitude"],
            "sparsities": [0.5], "seeds": [1, 2], "out": str(out)}
    names = [n for n, _ in expand(spec)]
    assert names == ["dense-seed1", "seven-s0.5-seed1", "magnitude-s0.5-seed1",
                     "dense-seed2", "seven-s0.5-seed2", "magnitude-s0.5-seed2"]
    first = sweep(spec, log=lambda *a: None, stop_after=2)  # interrupted after two runs
    assert first["stopped"] and first["done"] == 2
    finished = {p.parent.name: os.stat(p).st_mtime_ns for p in (out / "runs").glob("*/result.json")}
    assert sorted(finished) == ["dense-seed1", "seven-s0.5-seed1"]
    # a run cut off in the middle: its marker, config.json and a metrics line, no result.json
    cut = out / "runs" / "magnitude-s0.5-seed1"
    cut.mkdir()
    (cut / ".sevenprune-run").write_text("")
    (cut / "config.json").write_text("{}")
    (cut / "metrics.jsonl").write_text('{"step": 3}\n')
    report = sweep(spec, log=lambda *a: None)
    assert report["done"] == 4 and report["skipped"] == 2
    for name, mtime in finished.items():  # not redone
        assert os.stat(out / "runs" / name / "result.json").st_mtime_ns == mtime
    assert len((cut / "metrics.jsonl").read_text().splitlines()) == 1  # restarted, old line gone
    rows = collect_results(out)
    assert len(rows) == 6
    for name in ("results.csv", "report.md", "curve.png", "layers.png"):
        assert (out / name).stat().st_size > 0
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 7 and csv_lines[0].startswith("run,task,model,method,arm,seed,target_sparsity")
    # the table: dense first, mean ± std over the two seeds, computed by hand here
    accs = {r["run"]: r["metrics"]["accuracy"] for r in rows}
    import statistics

    seven = [accs["seven-s0.5-seed1"], accs["seven-s0.5-seed2"]]
    expected = f"| seven | {statistics.mean(seven):.4f} ± {statistics.stdev(seven):.4f} |"
    table = report["table"].splitlines()
    assert table[0] == "| method | 50% |" and table[2].startswith("| dense | ") and table[3] == expected
    assert report["table"] in (out / "report.md").read_text()
    # a third start does nothing new
    assert sweep(spec, log=lambda *a: None)["done"] == 0
    # report rebuilds the same table from the runs alone
    (out / "report.md").unlink()
    (out / "curve.png").unlink()
    again = build_report(out)
    assert again["table"] == report["table"] and (out / "curve.png").exists()
    assert again["table"] == markdown_table(rows, "accuracy", ["dense", "seven", "magnitude"])
    # a changed configuration does not silently reuse the finished runs
    with pytest.raises(ValueError, match=r"another configuration \(differs in \['lr'\]\)"):
        sweep({**spec, "lr": 5e-4}, log=lambda *a: None)


def test_sweep_file_formats_and_unknown_keys(tmp_path):
    (tmp_path / "s.toml").write_text('methods = ["dense", "seven"]\nsparsities = [0.5]\nmax_steps = 10\n')
    assert load_sweep_file(tmp_path / "s.toml") == {"methods": ["dense", "seven"], "sparsities": [0.5], "max_steps": 10}
    (tmp_path / "s.yaml").write_text("")
    with pytest.raises(ValueError, match="use a .json or .toml file"):
        load_sweep_file(tmp_path / "s.yaml")
    with pytest.raises(ValueError, match=r"unknown sweep key\(s\) \['sparsity_levels'\]"):
        sweep({"methods": ["dense"], "sparsity_levels": [0.5]})


def _squad_dir(root):
    context = "The film opened in Paris in 2016 and the actors were very good ."
    rows = [{"id": f"q{i}", "title": "t", "context": context, "question": q,
             "answers": {"text": [a], "answer_start": [context.index(a)]}}
            for i, (q, a) in enumerate([("where ?", "Paris"), ("when ?", "2016"), ("who ?", "the actors")])]
    root.mkdir()
    for split in ("train", "validation"):
        (root / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return root


def _stsb_dir(root):
    root.mkdir()
    rows = [{"sentence1": f"the film {w}", "sentence2": f"a movie {w}", "label": float(i % 5), "idx": i}
            for i, w in enumerate(["good", "bad", "fun", "dull", "smart", "weak"])]
    for split in ("train", "validation"):
        (root / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return root


def _fashion_dir(root):
    import numpy as np

    from sevenprune.tasks.testing import write_idx

    root.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 16), ("t10k", 8)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return root


@pytest.mark.parametrize("task, model, make, metrics", [
    ("squad", "bert", _squad_dir, {"exact_match", "f1"}),
    ("stsb", "bert", _stsb_dir, {"pearson", "spearman", "mse"}),
    ("fashion_mnist", "vit-scratch", _fashion_dir, {"accuracy", "f1", "mcc"}),
])
def test_run_end_to_end_on_other_task_kinds(env, task, model, make, metrics):
    data = make(env["root"] / f"data-{task}")
    cfg = resolve_config({"task": task, "model": env["model"] if model == "bert" else model,
                          "data_dir": str(data), "method": "magnitude", "sparsity": 0.5, "max_steps": 2,
                          "start_step": 0, "prune_steps": 1, "batch_size": 4, "max_length": 32,
                          "progress": False, "save_model": False})
    result = run(cfg, env["root"] / f"run-{task}")
    assert set(result["metrics"]) == metrics
    assert result["sparsity"] == pytest.approx(0.5, abs=1e-6)


def test_run_with_a_structured_pattern(env):
    """--pattern reaches sp.Pruner: 2:4 holds in every group of the saved masks, and the run's pruner
    state (with the masks of the heads' biases for "heads") saves and reloads."""
    import sevenprune as sp
    from sevenprune.patterns import nm_holds

    out = env["root"] / "run-24"
    cfg = resolve_config(_opts(env, method="seven", sparsity=0.5, start_step=2, prune_steps=4, pattern="2:4"))
    result = run(cfg, out, log=lambda *a: None)
    assert result["sparsity"] == pytest.approx(0.5, abs=1e-9)
    state = sp.read_state(out / "pruner")
    assert state["config"]["pattern"] == "2:4"
    assert all(nm_holds(m, 2, 4) for m in state["masks"].values())
    with pytest.raises(ValueError, match=r"fixes the sparsity at 1 - 2/4 = 0.5; got sparsity=0.7"):
        run(resolve_config(_opts(env, method="seven", sparsity=0.7, pattern="2:4")), env["root"] / "bad",
            log=lambda *a: None)


@pytest.mark.parametrize("method", ["magnitude_init", "random_init"])
def test_one_shot_aliases_prune_before_training(env, method):
    """magnitude_init / random_init prune once at the starting weights (phase "init"), then the mask
    stays fixed through fine-tuning at the exact target."""
    out = env["root"] / f"run-{method}"
    cfg = resolve_config(_opts(env, method=method, sparsity=0.6))
    result = run(cfg, out, log=lambda *a: None)
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["phase"] == "init"
    assert config["resolved"]["library_method"] == method.removesuffix("_init")
    assert result["sparsity"] == pytest.approx(0.6, abs=1e-4)


@pytest.mark.parametrize("method, phase_kw", [("random", {"start_step": 2, "prune_steps": 4}), ("random_init", {})])
def test_the_run_seed_draws_random_masks_unless_an_option_fixes_it(env, method, phase_kw):
    """A sweep's seeds must change random pruning's masks too (the library's own default seed is 0)."""
    def masks(name, seed, **kw):
        run(resolve_config(_opts(env, method=method, sparsity=0.5, seed=seed, max_steps=6, save_model=False,
                                 **phase_kw, **kw)), env["root"] / name, log=lambda *a: None)
        from safetensors.torch import load_file

        return {k: v for k, v in load_file(str(env["root"] / name / "pruner" / "pruner.safetensors")).items()
                if k.startswith("mask/")}

    one, two = masks(f"{method}-1", 1), masks(f"{method}-2", 2)
    assert any(not torch.equal(one[k], two[k]) for k in one)
    fixed1 = masks(f"{method}-f1", 1, method_options={"seed": 7})
    fixed2 = masks(f"{method}-f2", 2, method_options={"seed": 7})
    assert all(torch.equal(fixed1[k], fixed2[k]) for k in fixed1)
    # and the mask is the library's draw from that seed: the run's seed 1 is option seed 1
    option_seed_1 = masks(f"{method}-o1", 5, method_options={"seed": 1})
    assert all(torch.equal(one[k], option_seed_1[k]) for k in one)


def test_scope_is_a_run_option_and_old_runs_without_it_still_match():
    from sevenprune.tasks.config import config_differences as _differences

    assert resolve_config({"scope": "local", "sparsity": 0.5}).scope == "local"
    with pytest.raises(ValueError, match="unknown scope 'layer'"):
        resolve_config({"scope": "layer", "sparsity": 0.5})
    saved = RunConfig(method="seven", sparsity=0.5).to_dict()
    del saved["scope"]  # a run made before the option existed used the global ranking
    assert _differences(saved, RunConfig(method="seven", sparsity=0.5).to_dict()) == []
    assert _differences(saved, RunConfig(method="seven", sparsity=0.5, scope="local").to_dict()) == ["scope"]


def test_sweep_variants_of_dense_run_once_per_seed_with_their_options():
    spec = {"methods": ["dense", "sgd"], "sparsities": [0.5, 0.8], "seeds": [1], "lr": 1e-4,
            "variants": {"sgd": {"method": "dense", "optimizer": "sgd", "lr": 3e-3}}}
    runs = dict(expand(spec))
    assert list(runs) == ["dense-seed1", "sgd-seed1"]
    assert runs["sgd-seed1"]["optimizer"] == "sgd" and runs["sgd-seed1"]["lr"] == 3e-3
    assert runs["sgd-seed1"]["sparsity"] is None and runs["dense-seed1"]["lr"] == 1e-4



def _finished_run(folder, name, method, sparsity, value, **extra):
    (folder / "runs" / name).mkdir(parents=True)
    (folder / "runs" / name / "result.json").write_text(json.dumps(
        {"task": "mr", "model": "tiny", "method": method, "seed": 1, "target_sparsity": sparsity,
         "sparsity": sparsity, "model_sparsity": sparsity, "metric": "perplexity", "metrics": {"perplexity": value},
         "seconds": 1.0, **extra}))


def test_report_says_what_each_runs_seconds_were_measured_on(tmp_path):
    """report.md gives each run's mean load and marks (†) a run that waited for its CPU (its measured CPU
    share where it ran on one thread, else the load against the cores); the note names the processors (two
    here: seconds comparable within one only) and the run without a record; results.csv carries the
    processor, threads, load and CPU share per run."""
    folder = tmp_path / "sweep"
    def machine(cpu, load):
        return {"machine": {"cpu": cpu, "logical_cpus": 2, "torch_threads": 1, "load_1min": {"mean": load}}}

    _finished_run(folder, "dense-seed1", "dense", 0.0, 70.0, **machine("EPYC A", 2.04))
    _finished_run(folder, "seven-s0.5-seed1", "seven", 0.5, 71.0, **machine("EPYC B", 2.96))  # a third process
    _finished_run(folder, "wanda-s0.5-seed1", "wanda", 0.5, 72.0)  # from before the machine was recorded
    # a one-thread run that got the CPU 70 % of its time: shared, whatever the load average says
    _finished_run(folder, "platon-s0.5-seed1", "platon", 0.5, 73.0,
                  machine={**machine("EPYC A", 2.04)["machine"], "cpu_share": 0.7})
    build_report(folder, order=["dense", "seven", "wanda", "platon"])
    text = (folder / "report.md").read_text()
    assert "| dense-seed1 | 0.0000 | 0.0000 | 70.0000 | 1 | 2.0 |" in text
    assert "| seven-s0.5-seed1 | 0.5000 | 0.5000 | 71.0000 | 1 † | 3.0 |" in text
    assert "| wanda-s0.5-seed1 | 0.5000 | 0.5000 | 72.0000 | 1 | - |" in text
    assert "| platon-s0.5-seed1 | 0.5000 | 0.5000 | 73.0000 | 1 † | 2.0 |" in text
    assert ("Timed on 2 processors (EPYC A: 2 runs; EPYC B: 1 run): compare seconds between runs of one "
            "processor only; 1 run does not record its machine. † 2 runs waited for the CPU (another process "
            "shared it): their seconds are inflated.") in text
    rows = (folder / "results.csv").read_text().splitlines()  # sorted by run name
    assert rows[0].endswith(",seconds,cpu,torch_threads,load_1min_mean,cpu_share")
    assert rows[2].endswith(",1.0,EPYC A,1,2.04,0.7") and rows[3].endswith(",1.0,EPYC B,1,2.96,")
    assert rows[4].endswith(",1.0,,,,")


def test_report_keeps_a_variant_apart_from_its_method(tmp_path):
    # a sweep's variants run as their base method (result.json says "wanda"): the report used to average
    # wanda and its 2:4 variant as if they were two seeds of one method
    folder = tmp_path / "sweep"
    _finished_run(folder, "dense-seed1", "dense", 0.0, 70.0)
    _finished_run(folder, "sgd-seed1", "dense", 0.0, 80.0)  # a variant of dense
    _finished_run(folder, "wanda-s0.5-seed1", "wanda", 0.5, 110.0)
    _finished_run(folder, "wanda24-s0.5-seed1", "wanda", 0.5, 210.0)
    _finished_run(folder, "seven_nd-s1e-05-seed1", "seven", 1e-5, 71.0)
    report = build_report(folder, order=["dense", "sgd", "wanda", "wanda24", "seven_nd"])
    assert report["table"].splitlines()[2:] == [
        "| dense | 70.0000 | 70.0000 |", "| sgd | 80.0000 | 80.0000 |", "| wanda | - | 110.0000 |",
        "| wanda24 | - | 210.0000 |", "| seven_nd | 71.0000 | - |"]
    csv_rows = (folder / "results.csv").read_text().splitlines()
    assert csv_rows[0].startswith("run,task,model,method,arm,") and "wanda24-s0.5-seed1,mr,tiny,wanda,wanda24," in (
        "\n".join(csv_rows))


@pytest.mark.parametrize("stopped_in", ["results.csv", "report.md"])
def test_a_report_stopped_mid_write_leaves_the_last_one_whole(stopped_in, tmp_path, monkeypatch):
    # two sweeps writing into one folder, or a sweep stopped while it writes its report: a file written in
    # place would be left torn (the header of results.csv only, half of report.md)
    import csv
    from pathlib import Path

    folder = tmp_path / "sweep"
    _finished_run(folder, "dense-seed1", "dense", 0.0, 70.0)
    build_report(folder)
    before = {n: (folder / n).read_bytes() for n in ("results.csv", "report.md")}
    _finished_run(folder, "wanda-s0.5-seed1", "wanda", 0.5, 110.0)
    if stopped_in == "results.csv":
        real_writer = csv.writer

        class HeaderThenFail:  # the header reaches the file, then the writer fails
            def __init__(self, f):
                self.w, self.rows = real_writer(f), 0

            def writerow(self, row):
                if self.rows:
                    raise OSError("stopped mid-write")
                self.rows += 1
                self.w.writerow(row)

        monkeypatch.setattr(csv, "writer", HeaderThenFail)
    else:
        real_write_text = Path.write_text

        def half_then_fail(self, text, *args, **kwargs):
            real_write_text(self, text[: len(text) // 2], *args, **kwargs)
            raise OSError("stopped mid-write")

        monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(OSError, match="stopped mid-write"):
        build_report(folder)
    monkeypatch.undo()
    assert (folder / stopped_in).read_bytes() == before[stopped_in]
    assert [p.name for p in folder.iterdir() if ".tmp-" in p.name] == []  # no temporary file left behind
    assert "wanda" in build_report(folder)["table"]  # and the next report is whole


def test_report_never_overwrites_files_in_a_folder_it_did_not_write(env, tmp_path):
    import shutil

    # runs copied by hand into a folder of the user's, which already holds a report.md of theirs
    src = env["root"] / "run-seven"
    if not (src / "result.json").exists():
        pytest.skip("needs the run of test_run_writes_every_file_with_sane_values")
    folder = tmp_path / "mine"
    shutil.copytree(src, folder / "runs" / "seven-s0.5-seed42")
    (folder / "report.md").write_text("my notes")
    with pytest.raises(FileExistsError, match="is not a sweep folder written by sevenprune"):
        build_report(folder)
    assert (folder / "report.md").read_text() == "my notes"
    # without the user's file the report is written, the folder marked, and it can be rebuilt
    (folder / "report.md").unlink()
    build_report(folder)
    assert (folder / ".sevenprune-sweep").exists() and (folder / "report.md").read_text() != "my notes"
    build_report(folder)


def test_grasp_variant_reaches_the_pruner_and_is_recorded(env):
    out = env["root"] / "run-grasp-abs"
    opts = _opts(env, method="grasp", sparsity=0.3, max_steps=2, save_model=False, method_options={"variant": "abs"})
    result = run(resolve_config(opts), out)
    assert result["sparsity"] == pytest.approx(0.3, abs=1e-4)
    assert json.loads((out / "config.json").read_text())["method_options"] == {"variant": "abs"}
    with pytest.raises(ValueError, match=r"variant must be one of \['paper', 'abs'\]"):
        run(resolve_config(_opts(env, method="grasp", sparsity=0.3, max_steps=2, method_options={"variant": "x"})),
            env["root"] / "run-grasp-x")
