"""Metrics against hand-computed values (whole-set metrics, SQuAD's official normalisation)."""

import math

import numpy as np
import pytest

from sevenprune.tasks.metrics import (
    classification_metrics,
    normalize_answer,
    regression_metrics,
    squad_exact_match,
    squad_f1,
    squad_metrics,
)


def test_binary_accuracy_f1_mcc_by_hand():
    # TP = 2 (idx 0, 4), FP = 1 (idx 1), FN = 1 (idx 3), TN = 2 (idx 2, 5)
    m = classification_metrics([1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx(2 / 3)  # precision 2/3, recall 2/3
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 - 1) / sqrt(3^4) = 1/3
    assert m["mcc"] == pytest.approx(1 / 3)


def test_mcc_of_constant_prediction_is_zero_not_nan():
    m = classification_metrics([1, 1, 1, 1], [1, 0, 1, 0])
    assert m["mcc"] == 0.0 and m["accuracy"] == 0.5


def test_multiclass_f1_is_macro():
    # class 0: F1 1; class 1: P 1, R 1/2 -> 2/3; class 2: P 1/2, R 1 -> 2/3
    m = classification_metrics([0, 1, 2, 2], [0, 1, 1, 2], num_labels=3)
    assert m["f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert m["accuracy"] == pytest.approx(0.75)


def test_metrics_over_whole_set_differ_from_batch_average():
    preds, labels = np.array([1, 0, 0, 0]), np.array([1, 1, 0, 0])
    whole = classification_metrics(preds, labels)["f1"]  # P 1, R 1/2 -> 2/3
    # the reference's fault: the mean of per-batch F1 over batches [1,0 | 1,0] and [0,0 | 0,0]
    batch_mean = (classification_metrics(preds[:2], labels[:2])["f1"]
                  + classification_metrics(preds[2:], labels[2:])["f1"]) / 2
    assert whole == pytest.approx(2 / 3)
    assert batch_mean == pytest.approx(1 / 3)


def test_pearson_and_spearman_by_hand():
    m = regression_metrics([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
    # label ranks 1, 2, 3.5, 5, 3.5: sum dx*dy = 8, sum dx^2 = 10, sum dy^2 = 9.5
    assert m["spearman"] == pytest.approx(8 / math.sqrt(95))
    # raw labels: sum dx*dy = 6, sum dy^2 = 5.2
    assert m["pearson"] == pytest.approx(6 / math.sqrt(52))


def test_constant_regression_prediction_gives_zero():
    assert regression_metrics([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])["pearson"] == 0.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same length"):
        classification_metrics([1, 0], [1])


def test_squad_normalisation():
    assert normalize_answer("The Cat, sat!") == "cat sat"
    assert normalize_answer("  an   Apple a day ") == "apple day"
    assert squad_exact_match("The Denver Broncos.", "denver broncos") == 1.0
    assert squad_exact_match("Broncos", "denver broncos") == 0.0


def test_squad_f1_by_hand():
    # tokens: pred {cat sat on mat}, truth {cat on mat}: 3 common, P 3/4, R 1 -> 6/7
    assert squad_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    assert squad_f1("dog", "cat") == 0.0


def test_squad_metrics_take_the_best_ground_truth_and_are_percentages():
    m = squad_metrics(["Denver Broncos", "in 1990"], [["The Broncos", "Denver Broncos"], ["1989"]])
    assert m["exact_match"] == pytest.approx(50.0)
    assert m["f1"] == pytest.approx(50.0)  # 100 for the first, 0 for the second
