"""Paired statistics: exact cases by hand, and the interval covering what it should."""

import numpy as np
import pytest

from sevenprune.tasks.stats import (PairedDifference, format_points, mcnemar, paired_bootstrap,
                                         pooled_paired_bootstrap, verdict)


def test_identical_predictions_give_zero_with_a_zero_interval():
    a = [np.array([1, 0, 1, 1, 0]), np.array([0, 0, 1, 1, 1])]
    d = paired_bootstrap(a, a, n_boot=500)
    assert (d.mean, d.low, d.high, d.verdict) == (0.0, 0.0, 0.0, "not separated")


def test_a_method_right_everywhere_the_other_is_wrong_is_ahead_by_one():
    a = [np.ones(50), np.ones(50), np.ones(50)]
    b = [np.zeros(50)] * 3
    d = paired_bootstrap(a, b, n_boot=500)
    assert (d.mean, d.low, d.high, d.verdict) == (1.0, 1.0, 1.0, "ahead")
    assert paired_bootstrap(b, a, n_boot=500).verdict == "behind"


def test_the_interval_reflects_seed_noise_and_sentence_noise():
    rng = np.random.default_rng(1)
    # seed-level disagreement: A ahead by 10 points on one seed, behind by 10 on another
    a = [np.r_[np.ones(60), np.zeros(40)], np.r_[np.ones(40), np.zeros(60)]]
    b = [np.r_[np.ones(50), np.zeros(50)], np.r_[np.ones(50), np.zeros(50)]]
    d = paired_bootstrap(a, b, n_boot=2000)
    assert d.mean == pytest.approx(0.0) and d.low < -0.05 and d.high > 0.05 and d.verdict == "not separated"
    # a true 5-point lead on 2,000 sentences and 3 seeds is separated
    base = [rng.random(2000) < 0.80 for _ in range(3)]
    better = [np.where(rng.random(2000) < 0.25, 1, b_) for b_ in base]  # flips some wrong answers to right
    d = paired_bootstrap(better, base, n_boot=2000)
    assert d.low > 0 and d.verdict == "ahead"
    assert d.low <= d.mean <= d.high


def test_mcnemar_exact_by_hand():
    # 10 sentences only A gets right, 2 only B: p = 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * 79 / 4096
    a = np.array([1] * 10 + [0] * 2 + [1] * 30 + [0] * 8)
    b = np.array([0] * 10 + [1] * 2 + [1] * 30 + [0] * 8)
    assert mcnemar(a, b) == pytest.approx(2 * 79 / 4096)
    assert mcnemar(a, a) == 1.0


def test_mismatched_test_sets_are_refused():
    with pytest.raises(ValueError, match="different test sets"):
        paired_bootstrap([np.ones(3)], [np.ones(4)])
    with pytest.raises(ValueError, match="same, non-zero number of seeds"):
        paired_bootstrap([np.ones(3)], [])
    assert verdict(-0.01, 0.02) == "not separated"


def test_pooling_one_condition_is_the_paired_bootstrap_draw_for_draw():
    rng = np.random.default_rng(3)
    a = [rng.random(300) < 0.8 for _ in range(3)]
    b = [rng.random(300) < 0.75 for _ in range(3)]
    one = paired_bootstrap(a, b, n_boot=300, seed=5)
    pooled = pooled_paired_bootstrap([(a, b)], n_boot=300, seed=5)
    assert (pooled.mean, pooled.low, pooled.high, pooled.seeds) == (one.mean, one.low, one.high, 3)


def test_pooling_weighs_every_condition_seed_pair_alike_and_keeps_the_conditions_fixed():
    # condition 1, two seeds: A ahead by 1 and by 0.5; condition 2, one seed: behind by 1 on 4 sentences.
    # Mean over the three pairs, by hand: (1 + 0.5 - 1) / 3 = 1/6 (weighting conditions alike would give 0.375)
    c1 = ([np.ones(4), np.array([1, 1, 0, 0])], [np.zeros(4), np.zeros(4)])
    c2 = ([np.zeros(4)], [np.ones(4)])
    d = pooled_paired_bootstrap([c1, c2], n_boot=2000)
    assert d.mean == pytest.approx(1 / 6) and d.seeds == 3
    # the conditions are not resampled: condition 2 adds exactly -1 to every draw, and condition 1's two
    # drawn seeds add between 0 and 2, so every draw lies in [-1/3, +1/3] (resampling the three pairs
    # regardless of condition would reach -1, three copies of condition 2's seed)
    assert -1 / 3 <= d.low <= d.mean <= d.high <= 1 / 3
    # and constant strata pooled give a zero-width interval at their mean (an unstratified bootstrap
    # over the two pairs would spread from -1 to +1)
    up, down = ([np.ones(5)], [np.zeros(5)]), ([np.zeros(5)], [np.ones(5)])
    z = pooled_paired_bootstrap([up, down], n_boot=500)
    assert (z.mean, z.low, z.high, z.verdict) == (0.0, 0.0, 0.0, "not separated")


def test_pooling_names_the_condition_with_a_bad_test_set():
    with pytest.raises(ValueError, match="condition 1: .*different test sets"):
        pooled_paired_bootstrap([([np.ones(3)], [np.ones(3)]), ([np.ones(3)], [np.ones(2)])])
    with pytest.raises(ValueError, match="at least one condition"):
        pooled_paired_bootstrap([])


def _width(d) -> float:
    return d.high - d.low


def test_shared_sentences_count_a_sentence_that_repeats_across_seeds_once():
    # three seeds with the very same per-sentence differences: the seeds add nothing, so the crossed
    # ("shared") interval is that of one seed, 2 * 1.96 * sd / sqrt(n) by the normal approximation,
    # while redrawing the sentences per seed treats them as three times the evidence (sqrt(3) narrower)
    rng = np.random.default_rng(7)
    base = rng.random(2000) < 0.8
    a = np.where(rng.random(2000) < 0.15, 1, base)
    d = a.astype(float) - base
    shared = paired_bootstrap([a] * 3, [base] * 3, n_boot=3000, sentences="shared")
    independent = paired_bootstrap([a] * 3, [base] * 3, n_boot=3000)
    expected = 2 * 1.96 * d.std() / np.sqrt(d.size)
    assert shared.mean == pytest.approx(d.mean()) and shared.seeds == 3
    assert _width(shared) == pytest.approx(expected, rel=0.1)
    assert _width(shared) / _width(independent) == pytest.approx(np.sqrt(3), rel=0.12)


def test_shared_sentences_change_little_when_the_seeds_err_on_different_sentences():
    # per-seed differences drawn independently: no sentence effect repeats, and the two designs agree
    rng = np.random.default_rng(8)
    b = [rng.random(2000) < 0.8 for _ in range(4)]
    a = [np.where(rng.random(2000) < 0.1, 1, x) for x in b]
    shared = paired_bootstrap(a, b, n_boot=3000, sentences="shared")
    independent = paired_bootstrap(a, b, n_boot=3000)
    assert 0.8 < _width(shared) / _width(independent) < 1.25


def test_shared_sentences_pool_over_conditions_with_the_conditions_fixed():
    up, down = ([np.ones(5)], [np.zeros(5)]), ([np.zeros(5)], [np.ones(5)])
    z = pooled_paired_bootstrap([up, down], n_boot=500, sentences="shared")
    assert (z.mean, z.low, z.high) == (0.0, 0.0, 0.0)
    # and a condition whose test set differs is refused, naming the sizes
    with pytest.raises(ValueError, match="one test set for every condition.*3, 4 examples"):
        pooled_paired_bootstrap([([np.ones(3)], [np.ones(3)]), ([np.ones(4)], [np.ones(4)])], sentences="shared")
    with pytest.raises(ValueError, match="sentences='crossed': expected one of independent, shared"):
        paired_bootstrap([np.ones(3)], [np.ones(3)], sentences="crossed")


def test_points_never_print_minus_zero_and_round_as_format_does():
    # -0.0004 is -0.04 points: it rounds to zero and must read "+0.0", as a positive one does
    assert format_points(-0.0004, -0.004, 0.0004) == "+0.0 [-0.4, +0.0]"
    assert format_points(0.012, -0.0004, 0.027) == "+1.2 [+0.0, +2.7]"
    # just past the rounding boundary a negative value keeps its sign
    assert format_points(-0.00051, -0.0123, 0.00049) == "-0.1 [-1.2, +0.0]"
    # two digits: the pooled rows of the strategy study
    assert format_points(-0.00004, -0.0033, 0.001, digits=2) == "+0.00 [-0.33, +0.10]"
    d = PairedDifference(mean=-0.0004, low=-0.004, high=0.0004, seeds=3, examples=10, level=0.95, n_boot=1)
    assert d.points() == "+0.0 [-0.4, +0.0]" and d.points(digits=2) == "-0.04 [-0.40, +0.04]"
