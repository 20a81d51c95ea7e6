"""Every task loader on small local data written in the format of the real source."""

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sevenprune.tasks import loading as tasks, mr_data
from sevenprune.tasks.features import encode_squad, image_tensor, squad_answers
from sevenprune.tasks.testing import fake_sentences, make_fake_vader_sdist, make_tiny_bert, write_idx


@pytest.fixture()
def fake_vader(tmp_path, monkeypatch):
    rows = fake_sentences(100, seed=3)
    path = make_fake_vader_sdist(tmp_path / "cache" / tasks.VADER_SDIST, rows)
    monkeypatch.setattr(mr_data, "VADER_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return tmp_path / "cache", rows


def test_parse_vader_sdist_reads_the_movie_review_file(fake_vader):
    cache, rows = fake_vader
    sentences, scores = tasks.parse_vader_sdist(cache / tasks.VADER_SDIST)
    assert sentences == [s for s, _ in rows]  # CRLF stripped, not the tweets file
    assert scores == [v for _, v in rows]


def test_load_mr_labels_drops_zeros_and_splits_fixed(fake_vader):
    cache, rows = fake_vader
    score_of = dict(rows)
    data = tasks.load_mr(cache, test_size=20)
    n_zero = sum(v == 0 for _, v in rows)
    assert n_zero == 10
    assert len(data.evals["test"]["sentence"]) == 20
    assert len(data.train["sentence"]) == 100 - n_zero - 20
    for split in (data.train, data.evals["test"]):
        for s, y in zip(split["sentence"], split["label"]):
            assert score_of[s] != 0 and y == int(score_of[s] > 0)
    assert not set(data.train["sentence"]) & set(data.evals["test"]["sentence"])
    again = tasks.load_mr(cache, test_size=20)
    assert again.evals["test"]["sentence"] == data.evals["test"]["sentence"]  # the split is fixed


def test_mr_refuses_a_file_with_the_wrong_hash(fake_vader, monkeypatch):
    cache, _ = fake_vader
    monkeypatch.setattr(mr_data, "VADER_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        tasks.load_mr(cache, test_size=20)


def test_mr_too_small_for_the_test_set(fake_vader):
    with pytest.raises(ValueError, match="cannot hold out 2000"):
        tasks.load_mr(fake_vader[0])


def test_mr_is_fetched_with_pip_download_once(tmp_path, monkeypatch):
    source = make_fake_vader_sdist(tmp_path / "src" / tasks.VADER_SDIST, fake_sentences(30))
    monkeypatch.setattr(mr_data, "VADER_SHA256", hashlib.sha256(source.read_bytes()).hexdigest())
    calls = []

    requirements = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        requirements.extend([cmd[cmd.index("-r") + 1], Path(cmd[cmd.index("-r") + 1]).read_text()])
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / tasks.VADER_SDIST).write_bytes(source.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(mr_data.subprocess, "run", fake_run)
    cache = tmp_path / "cache"
    path = tasks.fetch_vader_sdist(cache)
    assert path == cache / tasks.VADER_SDIST and path.exists()
    # pip gets the sha256 (--require-hashes), so it checks the archive before running any of its code
    assert calls[0][1:] == ["-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--require-hashes",
                            "-r", requirements[0], "-d", calls[0][-1]]
    assert requirements[1] == f"vaderSentiment==3.3.2 --hash=sha256:{mr_data.VADER_SHA256}\n"
    tasks.fetch_vader_sdist(cache)
    assert len(calls) == 1  # cached
    assert list(cache.iterdir()) == [path]  # no temporary left behind


def test_failed_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(mr_data.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no network"))
    with pytest.raises(RuntimeError, match="no network"):
        tasks.fetch_vader_sdist(tmp_path)


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEVENPRUNE_CACHE", str(tmp_path / "c"))
    assert tasks.default_cache_dir() == tmp_path / "c"


def test_glue_tsv_pair_task(tmp_path):
    header = "sentence1\tsentence2\tlabel\tidx\n"
    (tmp_path / "train.tsv").write_text(header + "a b\tc d\t1\t0\ne f\tg h\t0\t1\n", encoding="utf-8")
    (tmp_path / "validation.tsv").write_text(header + "x \"quoted\" y\tz\t1\t0\n", encoding="utf-8")
    data = tasks.load_task("mrpc", data_dir=tmp_path)
    assert data.train["sentence1"] == ["a b", "e f"] and data.train["label"] == [1, 0]
    assert data.evals["validation"]["sentence1"] == ['x "quoted" y']  # TSV quotes kept as text
    assert data.spec.metric == "f1"


def test_glue_jsonl_regression_labels_are_floats(tmp_path):
    rows = [{"sentence1": "a", "sentence2": "b", "label": 3.8, "idx": 0},
            {"sentence1": "c", "sentence2": "d", "label": 0.5, "idx": 1}]
    for split in ("train", "validation"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    data = tasks.load_task("stsb", data_dir=tmp_path)
    assert data.evals["validation"]["label"] == [3.8, 0.5]
    assert data.spec.kind == "regression"


def test_glue_parquet_and_missing_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"sentence": ["ok .", "bad bad ."], "label": [1, 0], "idx": [0, 1]}),
                   tmp_path / "train.parquet")
    pq.write_table(pa.table({"sentence": ["fine ."], "label": [1], "idx": [0]}), tmp_path / "validation.parquet")
    data = tasks.load_task("cola", data_dir=tmp_path)
    assert data.train["sentence"] == ["ok .", "bad bad ."] and data.spec.metric == "mcc"
    with pytest.raises(ValueError, match=r"missing column\(s\) \['premise', 'hypothesis'\]"):
        tasks.load_task("mnli", data_dir=_mnli_files(tmp_path / "m", cols=("sentence",)))


def _mnli_files(root, cols=("premise", "hypothesis")):
    root.mkdir()
    for split in ("train", "validation_matched", "validation_mismatched"):
        row = {c: f"{c} {split}" for c in cols} | {"label": 2}
        (root / f"{split}.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    return root


def test_mnli_save_to_disk_has_matched_and_mismatched(tmp_path):
    import datasets

    def ds(tag, labels):
        return datasets.Dataset.from_dict({"premise": [f"p {tag}"] * len(labels),
                                           "hypothesis": [f"h {tag}"] * len(labels), "label": labels, "idx": list(range(len(labels)))})

    datasets.DatasetDict({"train": ds("t", [0, 1, 2]), "validation_matched": ds("m", [1]),
                          "validation_mismatched": ds("mm", [2, 0]), "test_matched": ds("x", [-1])}
                         ).save_to_disk(str(tmp_path / "mnli"))
    data = tasks.load_task("mnli", data_dir=tmp_path / "mnli")
    assert list(data.evals) == ["validation_matched", "validation_mismatched"]
    assert data.evals["validation_mismatched"]["label"] == [2, 0]
    assert data.spec.num_labels == 3


def test_unlabelled_eval_split_is_refused(tmp_path):
    for split, label in (("train", 1), ("validation", -1)):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps({"sentence": "s", "label": label}), encoding="utf-8")
    with pytest.raises(ValueError, match="unlabelled"):
        tasks.load_task("sst2", data_dir=tmp_path)


SQUAD_CONTEXT = "The Broncos won the title in Denver in 2016 after a long season."
YEAR_AT = 39  # SQUAD_CONTEXT.index("2016")


def _squad_official(path):
    obj = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": SQUAD_CONTEXT, "qas": [
        {"id": "q1", "question": "Who won?", "answers": [{"text": "The Broncos", "answer_start": 0},
                                                         {"text": "Broncos", "answer_start": 4}]},
        {"id": "q2", "question": "When?", "answers": [{"text": "2016", "answer_start": YEAR_AT}]}]}]}]}
    path.write_text(json.dumps(obj), encoding="utf-8")


def test_squad_official_json_and_jsonl(tmp_path):
    _squad_official(tmp_path / "train.json")
    _squad_official(tmp_path / "validation.json")
    data = tasks.load_task("squad", data_dir=tmp_path)
    ev = data.evals["validation"]
    assert ev["id"] == ["q1", "q2"] and ev["answers"][1] == {"text": ["2016"], "answer_start": [YEAR_AT]}
    assert SQUAD_CONTEXT[YEAR_AT:YEAR_AT + 4] == "2016"
    hf = tmp_path / "hf"
    hf.mkdir()
    for split in ("train", "validation"):
        lines = [json.dumps({"id": i, "title": "T", "context": c, "question": q, "answers": a})
                 for i, c, q, a in zip(ev["id"], ev["context"], ev["question"], ev["answers"])]
        (hf / f"{split}.jsonl").write_text("\n".join(lines), encoding="utf-8")
    assert tasks.load_task("squad", data_dir=hf).evals["validation"]["answers"] == ev["answers"]


def test_squad_features_point_at_the_answer_and_logits_map_back(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(make_tiny_bert(tmp_path / "bert")))
    cols = {"question": ["when?"], "context": [SQUAD_CONTEXT],
            "answers": [{"text": ["2016"], "answer_start": [YEAR_AT]}]}
    # a short window with overlap: the answer lies in some windows and not in others
    enc = encode_squad(cols, tok, max_length=24, doc_stride=8, train=True)
    assert len(enc["features"]) > 1
    found = [f for f in enc["features"] if f["start_positions"] > 0]
    assert found
    for f in found:
        text = tok.decode(f["input_ids"][f["start_positions"]:f["end_positions"] + 1]).replace(" ", "")
        assert text == "2016"
    ev = encode_squad(cols, tok, max_length=24, doc_stride=8, train=False)
    starts, ends = [], []
    for f, offsets in zip(enc["features"], ev["offsets"]):
        s, e = np.zeros(len(offsets)), np.zeros(len(offsets))
        if f["start_positions"] > 0:
            s[f["start_positions"]] = e[f["end_positions"]] = 5.0
        starts.append(s)
        ends.append(e)
    assert squad_answers(ev, starts, ends) == ["2016"]


def test_fashion_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 9]))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", train[:2], gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([4, 5]), gz=False)
    data = tasks.load_task("fashion_mnist", data_dir=tmp_path)
    assert np.array_equal(data.train["image"], train)
    assert data.train["label"].tolist() == [0, 1, 2, 3, 9] and data.evals["test"]["label"].tolist() == [4, 5]
    x = image_tensor(data.train["image"][0], 32)
    assert x.shape == (3, 32, 32)
    # uint8 0 -> -1 and 255 -> +1 with mean = std = 0.5
    assert image_tensor(np.full((4, 4), 255, dtype=np.uint8), 4).eq(1.0).all()


def test_idx_with_a_bad_header_is_refused(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="not an idx file"):
        tasks.read_idx(tmp_path / "x")


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        tasks.load_fashion_mnist(tmp_path)


def test_image_folder(tmp_path):
    from PIL import Image

    for split, n in (("train", 2), ("val", 1)):
        for c, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 6), color).save(d / f"{i}.png")
    data = tasks.load_task("imagenet", data_dir=tmp_path)
    assert data.info["classes"] == ["cat", "dog"] and data.spec.num_labels == 2
    assert data.train["label"] == [0, 0, 1, 1] and data.evals["validation"]["label"] == [0, 1]
    x = image_tensor(data.evals["validation"]["image"][1], 16)  # a blue image
    assert x.shape == (3, 16, 16) and x[2].eq(1.0).all() and x[0].eq(-1.0).all()


def test_cifar_save_to_disk_renames_columns(tmp_path):
    import datasets
    from PIL import Image

    imgs = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    feats = datasets.Features({"img": datasets.Image(), "fine_label": datasets.Value("int64"),
                               "coarse_label": datasets.Value("int64")})
    ds = datasets.Dataset.from_dict({"img": imgs, "fine_label": [5, 99, 0], "coarse_label": [1, 2, 3]}, features=feats)
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "c"))
    data = tasks.load_task("cifar100", data_dir=tmp_path / "c")
    assert data.train["label"] == [5, 99, 0] and data.spec.num_labels == 100
    assert image_tensor(data.evals["test"]["image"][0], 32).shape == (3, 32, 32)


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown task 'glue'; choose one of \['mr', 'cola'"):
        tasks.get_task("glue")


def test_imagenet_needs_a_directory():
    with pytest.raises(ValueError, match="--data-dir"):
        tasks.load_task("imagenet")


def test_subsample_is_seeded_and_bounded():
    cols = {"a": list(range(10)), "b": np.arange(10)}
    s1, s2 = tasks.subsample(cols, 4, seed=1), tasks.subsample(cols, 4, seed=1)
    assert s1["a"] == s2["a"] and len(s1["a"]) == 4 and s1["b"].tolist() == s1["a"]
    assert tasks.subsample(cols, 20, seed=1) is cols
