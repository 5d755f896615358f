import numpy as np
import pytest

import assay.stats as jm


def test_accuracy_and_per_class_prf_by_hand():
    pred = np.array([0, 1, 1, 0, 2, 1])
    true = np.array([0, 1, 0, 0, 2, 2])
    assert jm.accuracy(pred, true) == pytest.approx(4 / 6)
    prf = jm.per_class_prf(pred, true, 3)
    # class 1: predicted at 1,2,5, correct only at 1 -> P = 1/3; true 1 only at 1 -> R = 1
    assert prf["1"]["precision"] == pytest.approx(1 / 3) and prf["1"]["recall"] == 1.0
    assert prf["1"]["f1"] == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))
    # class 0: predicted at 0,3 (both right) -> P = 1; true at 0,2,3 -> R = 2/3
    assert prf["0"]["precision"] == 1.0 and prf["0"]["recall"] == pytest.approx(2 / 3)
    assert prf["2"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    empty = jm.per_class_prf(np.array([0]), np.array([0]), 2)["1"]
    assert empty == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_auroc_by_hand():
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> 3/4
    assert jm.auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert jm.auroc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)  # a tie counts half
    assert jm.auroc(np.array([3.0, 2.0, 1.0]), np.array([1, 0, 0])) == 1.0
    assert np.isnan(jm.auroc(np.array([1.0, 2.0]), np.array([1, 1])))


def test_regression_metrics_by_hand():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])
    # cov = (−1.5·−1.5 + −0.5·0.5 + 0.5·−0.5 + 1.5·1.5)/n = 4/n; var = 5/n each -> r = 0.8
    assert jm.pearson(x, y) == pytest.approx(0.8)
    assert jm.pearson(x, -2 * x) == pytest.approx(-1.0)
    # y ranks with a tie: [1, 2, 3.5, 5, 3.5] vs x ranks 1..5
    assert jm.spearman(np.array([1, 2, 3, 4, 5]), np.array([5, 6, 7, 8, 7])) == pytest.approx(
        jm.pearson(np.arange(1, 6), np.array([1, 2, 3.5, 5, 3.5]))
    )
    assert jm.spearman(np.array([1, 2, 3]), np.array([10, 100, 1000])) == pytest.approx(1.0)
    pred, true = np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.5, 1.0])
    assert jm.mae(pred, true) == pytest.approx(0.2 / 3)
    assert jm.r2(pred, true) == pytest.approx(1 - 0.02 / 0.5)
    assert jm.r2(true, true) == 1.0


def test_mean_se_and_undefined_values_are_nan():
    mean, se = jm.mean_se([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and se == pytest.approx(1.0 / np.sqrt(3))
    assert jm.mean_se([4.0]) == (4.0, 0.0)
    assert all(np.isnan(v) for v in jm.mean_se([]))
    assert np.isnan(jm.auroc(np.array([0.1, 0.2]), np.array([True, True])))  # one class only
    assert jm.json_number(float("nan")) is None and jm.json_number(0.5) == 0.5
