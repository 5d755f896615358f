"""`assay synth` end to end against a real OpenAI-compatible server on 127.0.0.1 (scripted), and a
kill-and-resume of a real `assay synth configs` process."""

import json
import sys
from pathlib import Path

import pytest

from assay.cli.main import main
from assay.llm.testserver import ScriptedServer
from tests.conftest import kill_and_resume
from tests.synth.synth_server import responder

SPLITS = ("TEST", "SFT-Val", "GRPO", "SFT-Train")


def read(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def run_cli(args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(responder=responder()) as srv:
        yield srv


def llm_args(server, tmp):
    return ["--model", "openai/scripted", "--api-base", server.base_url, "--cache", str(tmp / "cache.sqlite")]


@pytest.mark.slow
def summary_of(capsys) -> dict:
    """The JSON summary a step printed (stdout up to its last closing brace)."""
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") : out.rindex("}") + 1])


def test_synth_end_to_end(tmp_path, server, capsys):
    texts, vibes, configs, scored = (tmp_path / d for d in ("texts", "vibes", "configs", "scored"))
    assert run_cli(["synth", "ingest", "--out", str(texts), "--source", "kjv", "--per-source", "12"]) == 0
    capsys.readouterr()
    assert (
        run_cli(
            [
                "synth",
                "vibes",
                "--input-dir",
                str(texts),
                "--out",
                str(vibes),
                *llm_args(server, tmp_path),
                "--set",
                "vibes.levels=[m, xs]",
            ]
        )
        == 0
    )
    rows = {s: read(vibes / f"{s}.jsonl") for s in SPLITS}
    assert all(rows[s] for s in SPLITS), {s: len(v) for s, v in rows.items()}
    quality = summary_of(capsys)["quality"]  # the quality measures are in the step's summary
    assert quality["tags"]["schema_or_placeholder"] == 0 and quality["tags"]["mood_vocabulary"] == 1
    assert quality["vibes"]["with_loop"] == 0 and 0 <= quality["vibes"]["relevance_auroc"] <= 1
    texts_in = {s: {r["id_in_dataset"] for r in rows[s]} for s in SPLITS}
    assert sum(map(len, texts_in.values())) == len(set().union(*texts_in.values()))  # splits by text
    config = json.loads((vibes / "run_config.json").read_text())
    assert config["config"]["llm"]["model"] == "openai/scripted"
    assert config["prompt_profile"] == "plain"  # auto: an API model keeps the plain prompt

    before = server.count
    assert (
        run_cli(
            [
                "synth",
                "configs",
                "--input-dir",
                str(vibes),
                "--out",
                str(configs),
                *llm_args(server, tmp_path),
                "--num-candidates",
                "3",
            ]
        )
        == 0
    )
    out = [r for s in SPLITS for r in read(configs / f"{s}.jsonl")]
    assert len(out) == sum(map(len, rows.values()))
    assert 0 < summary_of(capsys)["validity"]["variety"] <= 1
    assert server.count - before == 3 * len(out)
    for r in out:
        assert len(r["config_candidates"]) == 3 and set(r["scores"]) == {
            "format_valid",
            "schema_valid",
            "palette_valid",
        }
        if r["best_index"] is None:
            assert r["config_payload"] is None and r["config_error"].startswith("no valid candidate")
        else:  # the first valid candidate
            valid = [i for i in range(3) if r["scores"]["schema_valid"][i] and r["scores"]["format_valid"][i]]
            assert r["best_index"] == valid[0] and r["config_payload"] == r["config_candidates"][valid[0]]
    assert any(0 in r["scores"]["format_valid"] for r in out) and any(0 in r["scores"]["schema_valid"] for r in out)

    # a second run is all cache hits: no new requests
    before = server.count
    assert (
        run_cli(
            [
                "synth",
                "configs",
                "--input-dir",
                str(vibes),
                "--out",
                str(tmp_path / "again"),
                *llm_args(server, tmp_path),
                "--num-candidates",
                "3",
            ]
        )
        == 0
    )
    assert server.count == before

    scorer = tmp_path / "my_scorer.py"
    scorer.write_text("def title_len(vibe, config):\n    return {'final_score': -len(config['title'])}\n")
    capsys.readouterr()
    assert (
        run_cli(
            [
                "synth",
                "score",
                "--input-dir",
                str(configs),
                "--out",
                str(scored),
                "--scorers",
                f"{scorer}:title_len,audio,llm_judge",
                *llm_args(server, tmp_path),
                "--set",
                "score.audio_duration=2",
            ]
        )
        == 0
    )
    assert 0 <= summary_of(capsys)["audio_scorer_auroc"] <= 1
    for s in SPLITS:
        for r in read(scored / f"{s}.jsonl"):
            if r["config_payload"] is None:
                assert r["score"] is None
                continue
            valid = [i for i, c in enumerate(r["candidate_scores"]) if c is not None]
            best = max(valid, key=lambda i: (-len(r["config_candidates"][i]["title"]), -i))
            assert r["best_index"] == best  # re-selected by the primary (custom) scorer
            assert set(r["score"]) == {f"{scorer}:title_len", "audio", "llm_judge"}
            assert -1 <= r["score"]["audio"] <= 1 and 0 <= r["score"]["llm_judge"] <= 1

    # retrieval map from the non-TEST splits, then a suggestion rendered to WAV
    assert run_cli(["music", "map", "--input-dir", str(scored), "-o", str(tmp_path / "map")]) == 0
    capsys.readouterr()
    wav = tmp_path / "suggest.wav"
    assert (
        run_cli(
            [
                "music",
                "suggest",
                "a stormy harbour at dusk",
                "--map",
                str(tmp_path / "map"),
                "--render",
                str(wav),
                "--duration",
                "2",
                "--json",
            ]
        )
        == 0
    )
    suggestion = json.loads(capsys.readouterr().out.splitlines()[0])
    assert suggestion["split"] != "TEST" and wav.stat().st_size > 44100 * 2 * 4


@pytest.mark.slow
def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path):
    vibes = tmp_path / "vibes"
    vibes.mkdir()
    rows = [
        {"row_id": f"r{i:03d}", "vibe_original": f"vibe number {i}", "split": s} for i, s in enumerate(["TEST"] * 40)
    ]
    (vibes / "TEST.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "configs"
    with ScriptedServer(responder=responder(delay_s=0.05)) as srv:
        cmd = [
            sys.executable,
            "-m",
            "assay",
            "synth",
            "configs",
            "--input-dir",
            str(vibes),
            "--out",
            str(out),
            "--model",
            "openai/scripted",
            "--api-base",
            srv.base_url,
            "--num-candidates",
            "1",
            "--max-concurrency",
            "2",
            "--set",
            "configs.splits=[TEST]",
        ]
        target = out / "TEST.jsonl"
        kill_and_resume(cmd, target, at_least=8, total=40, timeout=60)
    ids = [r["row_id"] for r in read(target)]
    assert sorted(ids) == [r["row_id"] for r in rows]  # 0 lost, 0 duplicated


@pytest.mark.slow
def test_local_smollm2_end_to_end_on_a_handful_of_rows(tmp_path, capsys):
    """The real local model (no network): 2 texts -> vibes -> 2 configs, schema-guided, all valid."""
    texts, vibes, configs = tmp_path / "texts", tmp_path / "vibes", tmp_path / "configs"
    assert run_cli(["synth", "ingest", "--out", str(texts), "--source", "kjv", "--per-source", "2"]) == 0
    local = ["--model", "local/smollm2", "--max-concurrency", "1", "--cache", str(tmp_path / "c.sqlite")]
    assert (
        run_cli(
            [
                "synth",
                "vibes",
                "--input-dir",
                str(texts),
                "--out",
                str(vibes),
                *local,
                "--set",
                "vibes.max_input_words=60",
                "--set",
                "vibes.max_characters=0",
                "--set",
                "vibes.levels=[xs]",
            ]
        )
        == 0
    )
    rows = [r for s in SPLITS for r in read(vibes / f"{s}.jsonl")]
    assert 1 <= len(rows) <= 2 and all(r["vibe_model"] == "local/smollm2" and r["vibe_original"] for r in rows)
    from assay.synth.quality import mood_words

    assert all(r["tags_original"] and set(r["tags_original"]) <= mood_words() for r in rows)  # the enum held
    assert (
        run_cli(
            [
                "synth",
                "configs",
                "--input-dir",
                str(vibes),
                "--out",
                str(configs),
                *local,
                "--num-candidates",
                "1",
                "--limit",
                "1",
            ]
        )
        == 0
    )
    out = [r for s in SPLITS for r in read(configs / f"{s}.jsonl")]
    assert 1 <= len(out) <= 2
    for r in out:  # guided decoding: every candidate is a valid payload
        assert r["scores"] == {"format_valid": [1], "schema_valid": [1], "palette_valid": [1]}
        assert r["config_payload"]["config"]["tempo"] in {"very_slow", "slow", "medium", "fast", "very_fast"}
