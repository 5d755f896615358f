"""Scorer protocol, custom scorers and the reward, on the shipped example payload."""

import json
from pathlib import Path

import pytest

from assay.synth.scorers.base import ScorerError, check_result
from assay.synth.scorers.custom import CustomScorer
from assay.synth.scorers.llm_rating import harmonic_mean
from assay.synth.scorers.reward import reward

PAYLOAD = json.loads((Path(__file__).parents[1] / "music" / "data" / "payload_valid.json").read_text())


@pytest.mark.parametrize(
    "bad, message",
    [
        (1.0, "not a dict"),
        ({"score": 1}, "without 'final_score'"),
        ({"final_score": "1"}, "finite number"),
        ({"final_score": float("nan")}, "finite number"),
        ({"final_score": True}, "finite number"),
    ],
)
def test_check_result_rejects_non_scores(bad, message):
    with pytest.raises(ScorerError, match=message):
        check_result(bad, "x")
    assert check_result({"final_score": 2, "extra": 1}, "x") == {"final_score": 2.0, "extra": 1}


def test_custom_scorer_loading_and_validation(tmp_path):
    f = tmp_path / "s.py"
    f.write_text(
        "def good(vibe, config):\n    return {'final_score': len(vibe)}\n"
        "def bad(vibe, config):\n    return 3\n"
        "def one_arg(vibe):\n    return {}\n"
        "def boom(vibe, config):\n    raise KeyError('x')\n"
    )
    assert CustomScorer(f"{f}:good").score("abc", PAYLOAD)["final_score"] == 3.0
    with pytest.raises(ScorerError, match="not a dict"):
        CustomScorer(f"{f}:bad").score("abc", PAYLOAD)
    with pytest.raises(ScorerError, match="signature"):
        CustomScorer(f"{f}:one_arg")
    with pytest.raises(ScorerError, match="raised KeyError"):
        CustomScorer(f"{f}:boom").score("abc", PAYLOAD)
    with pytest.raises(ScorerError, match="no function"):
        CustomScorer(f"{f}:missing")
    with pytest.raises(ScorerError, match="does not exist"):
        CustomScorer(f"{tmp_path / 'nope.py'}:good")
    with pytest.raises(ScorerError, match="file.py:function"):
        CustomScorer("just_a_name")


def test_harmonic_mean():
    assert harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_mean(1.0, 0.0) == 0.0
    assert harmonic_mean(0.9, 0.3) == pytest.approx(0.45)


def test_reward_components_and_penalties():
    vibe = "a lonely lighthouse on a winter night"
    good = reward(vibe, json.dumps(PAYLOAD))
    assert good["format"] == 1.0 and good["schema"] == 1.0 and 0 < good["audio"] <= 1
    expected = 0.2 + 0.3 + 0.4 * good["audio"] + 0.1 * good["title_similarity"]
    assert good["final_score"] == pytest.approx(expected)

    broken = reward(vibe, '{"title": "x"')
    assert broken["format"] == 0.0 and broken["schema"] == 0.0 and broken["final_score"] == 0.0

    bad_field = json.loads(json.dumps(PAYLOAD))
    bad_field["config"]["tempo"] = "warp"
    partial = reward(vibe, json.dumps(bad_field))
    assert 0.5 < partial["schema"] < 1.0 and partial["audio"] > 0  # sanitised -> still rendered

    long_dup = json.loads(json.dumps(PAYLOAD))
    long_dup["title"] = "one two three four five six seven"
    colors = long_dup["palettes"][0]["colors"]
    colors[1]["hex"] = colors[0]["hex"]
    penalised = reward(vibe, json.dumps(long_dup))
    assert penalised["title_too_long"] and penalised["palette_duplicates"]
    assert penalised["final_score"] < good["final_score"] - 0.3
