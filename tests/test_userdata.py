"""Your own data: text-classification from csv/tsv/jsonl/json/parquet files, image-classification from
an ImageFolder; and `sevenprune run --task text-classification` end to end on string labels."""

from __future__ import annotations

import json
import random

import pytest

from sevenprune import cli
from sevenprune.tasks import loading as tasks
from sevenprune.tasks.testing import make_tiny_bert


def write_rows(path, rows, fmt):
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        keys = list(rows[0])
        path.write_text("\n".join([sep.join(keys)] + [sep.join(str(r[k]) for k in keys) for r in rows]) + "\n")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_every_format_gives_the_same_columns_and_label_set(tmp_path, fmt):
    train = [{"text": "good film", "label": "pos"}, {"text": "bad film", "label": "neg"},
             {"text": "so so", "label": "mid"}, {"text": "great", "label": "pos"}]
    validation = [{"text": "fine", "label": "mid"}, {"text": "awful", "label": "neg"}]
    write_rows(tmp_path / f"train.{fmt}", train, fmt)
    write_rows(tmp_path / f"validation.{fmt}", validation, fmt)
    data = tasks.load_task("text-classification", data_dir=tmp_path)
    assert data.info["labels"] == ["mid", "neg", "pos"]  # sorted: ids 0, 1, 2
    assert data.spec.num_labels == 3 and data.spec.text_keys == ("text",)
    assert data.train["text"] == ["good film", "bad film", "so so", "great"]
    assert data.train["label"] == [2, 1, 0, 2] and data.evals["validation"]["label"] == [0, 1]


def test_integer_labels_pairs_and_named_columns(tmp_path):
    header = "premise,hypothesis,gold\n"
    (tmp_path / "train.csv").write_text(header + "a,b,7\nc,d,3\ne,f,7\n")
    (tmp_path / "validation.csv").write_text(header + "g,h,3\n")
    data = tasks.load_task("text-classification", data_dir=tmp_path, text_column="premise",
                           text_pair_column="hypothesis", label_column="gold")
    assert data.info["labels"] == [3, 7]  # integers, sorted numerically; ids are positions
    assert data.train["label"] == [1, 0, 1] and data.train["text_pair"] == ["b", "d", "f"]
    assert data.spec.text_keys == ("text", "text_pair")
    (tmp_path / "validation.csv").write_text(header + "g,h,3\ni,j,5\n")
    with pytest.raises(ValueError, match=r"validation.csv: row 2: label 5 does not occur in the training split "
                                         r"\(train.csv\); training labels are \[3, 7\]"):
        tasks.load_task("text-classification", data_dir=tmp_path, text_column="premise", label_column="gold")


def test_sentence_is_the_second_default_text_column(tmp_path):
    for split in ("train", "validation"):
        (tmp_path / f"{split}.jsonl").write_text('{"sentence": "x", "label": 0}\n{"sentence": "y", "label": 1}\n')
    assert tasks.load_task("text-classification", data_dir=tmp_path).info["text_column"] == "sentence"


def test_image_classification_takes_its_classes_from_the_folders(tmp_path):
    from PIL import Image

    for split, classes in (("train", ("cat", "dog", "eel")), ("validation", ("dog",))):
        for c in classes:
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (4, 4)).save(tmp_path / split / c / "0.png")
    data = tasks.load_task("image-classification", data_dir=tmp_path)
    assert data.spec.num_labels == 3 and data.info["labels"] == ["cat", "dog", "eel"]
    assert data.evals["validation"]["label"] == [1]


def test_run_text_classification_end_to_end_with_string_labels(tmp_path, capsys):
    """The acceptance test: a small CSV with string labels, through the command line."""
    bert = make_tiny_bert(tmp_path / "bert")
    words = {"positive": "good", "negative": "bad", "neutral": "the"}
    rng = random.Random(0)
    data = tmp_path / "data"
    data.mkdir()
    for split, n in (("train", 24), ("validation", 9)):
        labels = [rng.choice(sorted(words)) for _ in range(n)]
        rows = "".join(f"\"a {words[y]} film, really\",{y}\n" for y in labels)
        (data / f"{split}.csv").write_text("review,sentiment\n" + rows)
    out = tmp_path / "run"
    argv = ["run", "--task", "text-classification", "--data-dir", str(data), "--text-column", "review",
            "--label-column", "sentiment", "--model", str(bert), "--method", "magnitude", "--sparsity", "0.5",
            "--max-steps", "3", "--batch-size", "8", "--no-progress", "--out", str(out)]
    capsys.readouterr()  # what building the tiny model printed
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "text-classification" in captured.out and captured.err == ""  # --no-progress: no bars at all
    config = json.loads((out / "config.json").read_text())
    assert config["task_info"]["labels"] == ["negative", "neutral", "positive"]
    assert config["task_info"]["text_column"] == "review" and config["label_column"] == "sentiment"
    model_config = json.loads((out / "model" / "config.json").read_text())
    assert model_config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert model_config["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
    result = json.loads((out / "result.json").read_text())
    assert result["task"] == "text-classification" and result["eval_examples"] == {"validation": 9}
    assert result["sparsity"] == pytest.approx(0.5, abs=1e-9) and 0 <= result["metrics"]["accuracy"] <= 1
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(out / "model"))
    assert model.config.num_labels == 3 and model.config.id2label[2] == "positive"


def test_run_image_classification_names_its_classes(tmp_path, capsys):
    from PIL import Image

    for split, n in (("train", 3), ("val", 1)):
        for c, colour in (("cat", (250, 0, 0)), ("dog", (0, 0, 250))):
            (tmp_path / "img" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), colour).save(tmp_path / "img" / split / c / f"{i}.png")
    out = tmp_path / "run"
    argv = ["run", "--task", "image-classification", "--data-dir", str(tmp_path / "img"), "--model", "vit-scratch",
            "--method", "dense", "--max-steps", "1", "--batch-size", "2", "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["task_info"]["labels"] == ["cat", "dog"]
    assert json.loads((out / "model" / "config.json").read_text())["id2label"] == {"0": "cat", "1": "dog"}
    assert json.loads((out / "result.json").read_text())["eval_examples"] == {"validation": 2}


def test_numbers_in_a_text_column_are_text_but_a_gap_is_an_error(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n12,a\n7,b\n")
    (tmp_path / "validation.csv").write_text("text,label\n3,a\n")
    assert tasks.load_task("text-classification", data_dir=tmp_path).train["text"] == ["12", "7"]
    (tmp_path / "validation.csv").write_text("text,label\n3,a\n,b\n")
    with pytest.raises(ValueError, match=r"validation.csv: row 2: column 'text' holds (nan|None), not text"):
        tasks.load_task("text-classification", data_dir=tmp_path)
