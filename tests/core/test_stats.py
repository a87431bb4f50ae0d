"""Bootstrap confidence intervals and the paired bootstrap test (p2r_eval.core.stats)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2r_eval.benchmarks import vsibench
from p2r_eval.core.stats import (
    GroupMeanAggregate,
    ScoredItem,
    bootstrap_ci,
    mean_score,
    paired_bootstrap_test,
)

vsi_video_r1_score = vsibench.VIDEO_R1_AGGREGATION.statistic
vsi_official_score = vsibench.OFFICIAL_AGGREGATION.statistic


def samples_from(scores, prefix="q", answer_type="multiple choice"):
    return [
        ScoredItem(f"{prefix}{i}", score, answer_type)
        for i, score in enumerate(scores)
    ]


def vsi_samples():
    accuracy = samples_from([1.0, 1.0, 1.0, 0.0], prefix="mc")  # mean 0.75
    regression = samples_from([0.2, 0.4], prefix="na", answer_type="regression")  # mean 0.3
    return accuracy + regression


def test_mean_score_is_the_plain_mean():
    assert mean_score(samples_from([1.0, 0.0, 0.5, 0.5])) == pytest.approx(0.5)


def test_vsi_score_averages_the_accuracy_mean_and_the_regression_mean():
    # (0.75 + 0.3) / 2, not the plain mean over six items (3.6 / 6 = 0.6)
    assert vsi_video_r1_score(vsi_samples()) == pytest.approx(0.525)
    assert mean_score(vsi_samples()) == pytest.approx(0.6)


def test_vsi_score_with_one_kind_only_is_that_kind_mean():
    assert vsi_video_r1_score(samples_from([1.0, 0.0, 0.0, 0.0])) == pytest.approx(0.25)


def test_bootstrap_ci_excludes_unscored_items_and_says_how_many():
    samples = samples_from([1.0, 0.0, 1.0, None, 1.0, None])
    interval = bootstrap_ci(samples, n_resamples=500)
    assert interval.n_used == 4
    assert interval.n_excluded == 2
    assert interval.estimate == pytest.approx(0.75)
    assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0


def test_bootstrap_ci_is_reproducible_with_a_seed_and_varies_without_it():
    samples = samples_from(np.random.default_rng(1).integers(0, 2, 300).astype(float))
    first = bootstrap_ci(samples, n_resamples=400, seed=7)
    again = bootstrap_ci(samples, n_resamples=400, seed=7)
    other = bootstrap_ci(samples, n_resamples=400, seed=8)
    assert (first.low, first.high) == (again.low, again.high)
    assert (first.low, first.high) != (other.low, other.high)


def test_bootstrap_ci_width_matches_the_normal_approximation_for_a_proportion():
    # 400 items at 50%: the 95% interval is about ±1.96 * sqrt(0.25 / 400) = ±0.049.
    samples = samples_from([1.0, 0.0] * 200)
    interval = bootstrap_ci(samples, n_resamples=4000, seed=0)
    assert interval.high - interval.low == pytest.approx(0.098, abs=0.012)
    assert interval.low < 0.5 < interval.high


def test_vectorised_and_generic_aggregates_give_identical_resamples():
    samples = vsi_samples() * 5
    fast = bootstrap_ci(samples, vsi_video_r1_score, n_resamples=300, seed=3)
    slow = bootstrap_ci(samples, lambda s: vsi_video_r1_score(s), n_resamples=300, seed=3)
    assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high))
    assert fast.estimate == pytest.approx(slow.estimate)


def test_bootstrap_ci_of_vsi_resamples_items_and_recomputes_the_vsi_aggregate():
    interval = bootstrap_ci(vsi_samples() * 20, vsi_video_r1_score, n_resamples=1000)
    assert interval.estimate == pytest.approx(0.525)
    assert interval.low < 0.525 < interval.high
    # a plain-mean bootstrap would centre on 0.6 instead
    assert interval.high < 0.6


def vsi_official_samples(n_per_type: int, seed: int = 0) -> list[ScoredItem]:
    """Samples over the ten question types (three relative-direction types among them)."""
    types = ["object_counting", "object_abs_distance", "object_size_estimation",
             "room_size_estimation", "object_rel_distance", "route_planning",
             "obj_appearance_order", "object_rel_direction_easy",
             "object_rel_direction_medium", "object_rel_direction_hard"]
    rng = np.random.default_rng(seed)
    return [ScoredItem(f"{name}{i}", float(rng.random() < 0.4 + 0.05 * k),
                       meta={"question_type": name})
            for k, name in enumerate(types) for i in range(n_per_type)]


def test_vsi_official_score_averages_eight_categories_directions_first():
    samples = [ScoredItem(str(i), score, meta={"question_type": name})
               for i, (name, score) in enumerate([
                   ("object_rel_direction_easy", 1.0), ("object_rel_direction_hard", 0.0),
                   ("object_rel_direction_hard", 0.0), ("route_planning", 1.0),
                   ("object_counting", 0.5)])]
    # categories: direction (1.0 + 0.0) / 2, route planning 1.0, counting 0.5
    assert vsi_official_score(samples) == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert vsi_official_score.group_percents(samples) == pytest.approx({
        "question_type/object_counting": 50.0, "question_type/object_rel_direction": 50.0,
        "question_type/route_planning": 100.0})


def test_samples_without_a_group_are_left_out():
    samples = vsi_official_samples(3) + [ScoredItem("x", 1.0, meta={})]
    assert vsi_official_score(samples) == vsi_official_score(samples[:-1])
    with pytest.raises(ValueError, match="empty"):
        vsi_official_score(samples[-1:])


@pytest.mark.parametrize("aggregate", [mean_score, vsi_video_r1_score, vsi_official_score],
                         ids=repr)
def test_vectorised_resamples_equal_the_aggregate_of_each_resample(aggregate):
    samples = [dataclasses.replace(sample, answer_type="regression" if i % 3 == 0
                                   else "multiple choice")
               for i, sample in enumerate(vsi_official_samples(4, seed=2))]
    indices = np.random.default_rng(5).integers(0, len(samples), size=(50, len(samples)))
    fast = aggregate.over_resamples(samples, indices)
    slow = [aggregate([samples[i] for i in row]) for row in indices]
    assert fast == pytest.approx(slow, abs=1e-12)


def test_group_paths_of_different_lengths_are_refused():
    uneven = GroupMeanAggregate(lambda s: ("a",) * int(s.score), "uneven")
    with pytest.raises(ValueError, match="different lengths"):
        uneven(samples_from([0.0, 1.0]))


def test_bootstrap_ci_refuses_when_nothing_is_scored():
    with pytest.raises(ValueError, match="no scored samples"):
        bootstrap_ci(samples_from([None, None]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_mean_interval_lies_within_the_observed_scores(scores):
    interval = bootstrap_ci(samples_from(scores), n_resamples=50)
    assert min(scores) - 1e-9 <= interval.low <= interval.high <= max(scores) + 1e-9


def test_identical_runs_differ_by_zero_with_p_one():
    samples = samples_from([1.0, 0.0, 1.0, 1.0, 0.0])
    test = paired_bootstrap_test(samples, samples, n_resamples=500)
    assert test.difference == 0
    assert test.p_value == 1.0
    assert test.n_paired == 5


def test_a_large_consistent_gain_is_significant():
    better = samples_from([1.0] * 150 + [0.0] * 50)
    worse = samples_from([1.0] * 100 + [0.0] * 100)
    test = paired_bootstrap_test(better, worse, n_resamples=2000)
    assert test.difference == pytest.approx(0.25)
    assert test.low > 0
    assert test.p_value < 0.001


def test_paired_p_value_agrees_with_an_exact_sign_test():
    # 100 items, the runs disagree on 20: A right on 14 of those, B on 6.
    a = [1.0] * 14 + [0.0] * 6 + [1.0] * 40 + [0.0] * 40
    b = [0.0] * 14 + [1.0] * 6 + [1.0] * 40 + [0.0] * 40
    test = paired_bootstrap_test(samples_from(a), samples_from(b), n_resamples=10000)
    assert test.p_value == pytest.approx(exact_sign_test_p_value(14, 20), abs=0.06)


def exact_sign_test_p_value(wins: int, disagreements: int) -> float:
    """The two-sided exact sign test by its definition: the probability, under fair coin flips,
    of a split at least as uneven as ``wins`` of ``disagreements``."""
    def probability(k: int) -> float:
        return math.comb(disagreements, k) / 2**disagreements

    observed = probability(wins)
    return min(1.0, sum(probability(k) for k in range(disagreements + 1)
                        if probability(k) <= observed))


def test_the_exact_sign_test_reference_is_the_textbook_value():
    assert exact_sign_test_p_value(14, 20) == pytest.approx(0.1153183, abs=1e-7)
    assert exact_sign_test_p_value(10, 20) == 1.0


def test_pairing_uses_shared_scored_items_and_reports_the_rest():
    run_a = samples_from([1.0, 1.0, 0.0, None]) + [ScoredItem("only-a", 1.0)]
    run_b = samples_from([0.0, 1.0, 0.0, 1.0]) + [ScoredItem("only-b1", 0.0)]
    run_b.append(ScoredItem("only-b2", 0.0))
    test = paired_bootstrap_test(run_a, run_b, n_resamples=200)
    assert (test.n_paired, test.n_unscored, test.n_only_a, test.n_only_b) == (3, 1, 1, 2)
    assert test.score_a == pytest.approx(2 / 3)
    assert test.score_b == pytest.approx(1 / 3)


def test_pairing_order_does_not_matter():
    a = samples_from([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    b = samples_from([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    forward = paired_bootstrap_test(a, b, n_resamples=300, seed=1)
    shuffled = paired_bootstrap_test(a, list(reversed(b)), n_resamples=300, seed=1)
    assert forward == shuffled


def test_paired_test_refuses_disjoint_runs_and_duplicate_ids():
    with pytest.raises(ValueError, match="no item is scored in both runs"):
        paired_bootstrap_test(samples_from([1.0], "a"), samples_from([1.0], "b"))
    with pytest.raises(ValueError, match="appears twice"):
        paired_bootstrap_test(samples_from([1.0]) * 2, samples_from([1.0]))
