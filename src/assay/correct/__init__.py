"""The self-correction pipeline (`assay correct`, docs/correct.md): answer questions, reprompt under a
learned policy, check every answer, log traces.

    qa.py + samples/   question streams (GSM8K, HotpotQA, BoolQ, CSV, JSONL) and the shipped samples
    checkers.py        answer checkers (and custom `file.py:function` ones)
    failure_modes.py   the failure mode of a trajectory of right/wrong answers
    templates.py       the reprompt templates (templates.toml)
    context.py         the policy's context: the heuristic predictor and the answer features
    classifier.py      the trained failure-mode + confidence classifier (`train-classifier`)
    policy.py          bandit policies (Thompson, epsilon-greedy, fixed, random, never) and credit
    engine.py          one episode (`Engine`) and one run (`CorrectStep`, a pipeline step)
    records.py, summary.py, plots.py, compare.py   traces, summaries, plots, `assay correct compare`
"""
