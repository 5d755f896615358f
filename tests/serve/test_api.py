"""The JSON API of a real `assay serve` process: round trips, limits and errors, concurrency."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from assay import Judge
from assay.data.corpus import load_corpus
from assay.generate import generate_text
from assay.train.checkpoint import load_checkpoint
from tests.conftest import ROOT, assay_cmd
from tests.serve.conftest import start_server, stop_server

REAL = load_corpus("tinyshakespeare").documents[0].text


def test_health_models_and_loopback(server, judges, tiny_lm):
    assert server.url.startswith("http://127.0.0.1:")
    assert server.request("GET", "/healthz")[:2] == (200, {"status": "ok"})
    status, info, _ = server.request("GET", "/api/models")
    assert status == 200
    scorer, inspector, lm = info["judge"]["sequence_scorer"], info["judge"]["token_classifier"], info["lm"]
    assert scorer["mode"] == "sequence_scorer" and inspector["mode"] == "token_classifier"
    assert lm["mode"] == "language_model"
    for model in (scorer, inspector, lm):
        assert model["vocab_size"] == 69 and model["n_layer"] == 2 and model["n_embd"] == 64
        assert model["parameters"] > 10_000 and model["iter"] > 0
        assert model["metrics"] and "val_loss" in model["metrics"]
    assert inspector["num_classes"] == 2 and info["judge"]["token_probabilities"] is True
    assert info["limits"]["max_texts"] == 8


def test_models_name_the_runs_without_server_paths(server, judges, tiny_lm):
    info = server.request("GET", "/api/models")[1]
    lm, scorer = info["lm"], info["judge"]["sequence_scorer"]
    assert (lm["run"], lm["checkpoint"]) == (tiny_lm.name, load_checkpoint(tiny_lm).directory.name)
    assert scorer["run"] == "scorer" and sorted(info["judge"]["sources"]) == ["inspector/best", "scorer/best"]
    strings = []

    def walk(value):
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            strings.append(value)

    walk(info)
    assert all(not s.startswith(("/", "~")) and "\\" not in s for s in strings), strings
    raw = json.dumps(info)
    assert str(judges.parent) not in raw and str(tiny_lm.parent) not in raw and str(ROOT) not in raw


def test_score_round_trip_matches_the_judge_in_process(server, judges):
    texts = [REAL[:60], REAL[200:500], "O Romeo, Romeo!"]
    status, data = server.post("/api/score", {"texts": texts})
    assert status == 200
    expected = Judge.load(judges).score(texts)
    assert len(data["results"]) == 3
    for got, want in zip(data["results"], expected, strict=True):
        assert set(got) == set(want) == {"text", "n_tokens", "tokens", "score"}
        assert got["text"] == want["text"] and got["n_tokens"] == want["n_tokens"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-5)
        assert [t["text"] for t in got["tokens"]] == [t["text"] for t in want["tokens"]]
        assert [t["p_replaced"] for t in got["tokens"]] == pytest.approx(
            [t["p_replaced"] for t in want["tokens"]], abs=1e-5
        )
    one = server.post("/api/score", {"text": texts[2]})
    assert one[0] == 200 and one[1]["results"][0]["score"] == pytest.approx(data["results"][2]["score"], abs=1e-5)


def test_score_result_has_the_fields_of_assay_score_json(server, judges):
    text = REAL[:80]
    cli = subprocess.run(
        [*assay_cmd(), "score", str(judges), text, "--json"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)
    got = server.post("/api/score", {"text": text})[1]["results"][0]
    assert set(got) == set(want) and set(got["tokens"][0]) == set(want["tokens"][0])


BAD_SCORE_BODIES = [
    ({"text": ""}, "empty"),
    ({"text": "   \n "}, "empty"),
    ({"texts": []}, "empty"),
    ({"texts": ["fine", ""]}, "text 2 is empty"),
    ({"text": "x" * 1001}, "1001 characters; the limit is 1000"),
    ({"texts": ["a"] * 9}, "9 texts in one request; the limit is 8"),
    ({"text": "a", "texts": ["b"]}, "exactly one of"),
    ({}, "exactly one of"),
    ({"text": 3}, "text: input should be a valid string"),
    ({"text": "a", "path": "/etc/passwd"}, "path: unknown field"),
    ([1, 2], "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "message"), BAD_SCORE_BODIES)
def test_score_errors_are_422_with_one_line(server, body, message):
    status, data = server.post("/api/score", body)
    assert status == 422 and data["status"] == 422
    assert message in data["error"] and "\n" not in data["error"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"\xff\xfe{\x00}", 422, "not valid UTF-8"),
        (b'{"text": "caf\xe9"}', 422, "not valid UTF-8 (bad byte at offset 13)"),
        (b'{"text": "\\ud800"}', 422, "lone surrogate"),
        (b'{"text": ', 422, "not valid JSON"),
        (b"", 422, "body is empty"),
        (json.dumps({"text": "x" * 5000}).encode(), 413, "over the limit of 4096 bytes"),
    ],
)
def test_bad_bodies(server, body, status, message):
    got, data, _ = server.request("POST", "/api/score", body, {"Content-Type": "application/json"})
    assert got == status and message in data["error"]


def test_oversize_body_without_content_length_is_refused_while_reading(server):
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    chunks = (b'{"text": "' + b"y" * 3000, b"z" * 3000 + b'"}')
    conn.request("POST", "/api/score", body=iter(chunks), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 413 and "over the limit" in json.loads(response.read())["error"]
    conn.close()


def test_unknown_paths_are_json_404s_and_no_files_are_served(server):
    for path in ("/nothing", "/static/../pyproject.toml", "/static/app.py", "/api/score/../../etc/passwd"):
        status, data, _ = server.request("GET", path)
        assert status == 404 and data["error"].startswith("no such page or endpoint"), path
    status, data, _ = server.request("GET", "/api/score")
    assert status == 405


def test_page_assets_and_security_headers(server):
    status, body, headers = server.request("GET", "/")
    assert status == 200 and b"<title>assay serve</title>" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert server.request("GET", asset)[0] == 200
    page = body.decode()
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_generate_matches_assay_generate(server, tiny_lm):
    params = {"length": 40, "steps": 8, "temperature": 0.9, "top_p": 0.95, "seed": 3, "prompt": "ROMEO:"}
    status, data = server.post("/api/generate", params)
    assert status == 200
    ckpt = load_checkpoint(tiny_lm)
    want = generate_text(ckpt, 40, 8, 0.9, 0.95, 3, "ROMEO:")
    assert data["text"] == want["text"] and data["text"].startswith("ROMEO:")
    assert data["tokens"] == len("ROMEO:") + 40 and data["steps"] == 8
    assert server.post("/api/generate", params)[1]["text"] == data["text"]  # same seed, same text


def stream(server, params) -> list[dict]:
    status, raw, headers = server.request(
        "POST", "/api/generate", json.dumps(params | {"stream": True}).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    text = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    return [json.loads(line) for line in text.decode().splitlines()]


def test_generate_streams_the_denoising_steps(server):
    # block 32: two windows (32, then 16 after 16 of context); the confidence sampler's linear schedule
    params = {"length": 48, "steps": 5, "seed": 1, "sampler": "confidence"}
    events = stream(server, params)
    start, steps, done = events[0], events[1:-1], events[-1]
    assert start["event"] == "start" and start["windows"] == 2 and start["steps"] == 5
    assert [(e["window"], e["step"]) for e in steps] == [(w, s) for w in range(2) for s in range(5)]
    assert stream(server, {"length": 50, "steps": 2})[0]["windows"] == 3  # 32 + 16 + 2
    masked = [e["masked"] for e in steps]
    assert masked[4] == 0 and masked[-1] == 0
    assert masked[:5] == [32 * (5 - s - 1) // 5 for s in range(5)]  # the linear unmasking schedule
    for e in steps:
        assert e["masked"] == sum(t is None for t in e["tokens"])
    assert len(steps[4]["tokens"]) == 32 and len(steps[-1]["tokens"]) == 48
    assert done["event"] == "done" and "".join(steps[-1]["tokens"]) == done["text"]
    assert done["text"] == server.post("/api/generate", params)[1]["text"]  # streaming changes nothing


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"length": 201}, "length 201 is over the limit of 200"),
        ({"steps": 0}, "steps: input should be greater than or equal to 1"),
        ({"top_p": 0}, "top_p: input should be greater than 0"),
        ({"sampler": "sideways"}, "sampler: 'sideways' is not one of confidence, random, ancestral, remdm"),
        ({"prompt": "p" * 1001}, "the prompt has 1001 characters"),
        ({"lenght": 5}, "lenght: unknown field"),
    ],
)
def test_generate_errors(server, body, message):
    status, data = server.post("/api/generate", body)
    assert status == 422 and message in data["error"]


def test_concurrent_requests_are_batched_and_answered_correctly(server, judges):
    texts = [REAL[i * 37 : i * 37 + 30 + i] for i in range(32)]
    before = server.request("GET", "/api/models")[1]["stats"]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda t: server.post("/api/score", {"text": t}), texts))
    after = server.request("GET", "/api/models")[1]["stats"]
    expected = Judge.load(judges).score(texts)
    for (status, data), want in zip(answers, expected, strict=True):
        assert status == 200
        assert data["results"][0]["text"] == want["text"]
        assert data["results"][0]["score"] == pytest.approx(want["score"], abs=1e-5)
    requests = after["score_requests"] - before["score_requests"]
    batches = after["score_batches"] - before["score_batches"]
    assert requests == 32 and batches < requests  # several requests shared a model call


# 200 tokens in windows of 32 then 16: 12 windows of 512 steps, 6,144 denoising steps (seconds of work)
LONG = {"length": 200, "steps": 512}
LONG_STEPS = 12 * 512


def wait_for(server, condition, timeout: float = 15) -> dict:
    """The server's stats once `condition(stats)` holds (polled), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        stats = server.stats()
        if condition(stats):
            return stats
        assert time.monotonic() < deadline, f"timed out waiting; stats {stats}"
        time.sleep(0.05)


def assert_stopped_early(server, before: dict, at_least_steps: int) -> None:
    """The generation started after `before` was abandoned, long before its end, and the LM is free."""
    after = wait_for(server, lambda s: s["generations_active"] == 0)
    assert after["generations_abandoned"] == before["generations_abandoned"] + 1
    assert after["generations_finished"] == before["generations_finished"]
    steps = after["generation_steps"] - before["generation_steps"]
    assert at_least_steps <= steps < LONG_STEPS // 4, steps
    time.sleep(0.3)
    assert server.stats()["generation_steps"] == after["generation_steps"]  # nothing runs on
    started = time.monotonic()
    assert server.post("/api/generate", {"length": 10, "steps": 2})[0] == 200
    assert time.monotonic() - started < 5  # the LM was free at once


def test_a_client_leaving_a_stream_stops_its_generation(server):
    import http.client

    parts = urlsplit(server.url)
    before = wait_for(server, lambda s: s["generations_active"] == 0)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = json.dumps(LONG | {"stream": True})
    conn.request("POST", "/api/generate", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert json.loads(response.readline())["event"] == "start"
    for _ in range(3):
        assert json.loads(response.readline())["event"] == "step"
    conn.close()  # gone after three steps
    assert_stopped_early(server, before, at_least_steps=3)
    assert server.post("/api/score", {"text": "still here"})[0] == 200


def test_a_client_leaving_an_unstreamed_generation_stops_it(server):
    parts = urlsplit(server.url)
    before = wait_for(server, lambda s: s["generations_active"] == 0)
    body = json.dumps(LONG).encode()
    head = (
        f"POST /api/generate HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.sendall(head.encode() + body)
    wait_for(server, lambda s: s["generation_steps"] >= before["generation_steps"] + 5)  # it runs
    sock.close()
    assert_stopped_early(server, before, at_least_steps=5)


def test_without_an_lm_generate_is_404(judges):
    srv = start_server("--judge", str(judges / "scorer"))
    try:
        status, data = srv.post("/api/generate", {"length": 5})
        assert status == 404 and "--lm" in data["error"]
        info = srv.request("GET", "/api/models")[1]
        assert info["lm"] is None and info["judge"]["token_classifier"] is None
        result = srv.post("/api/score", {"text": "no tokens from a scorer alone"})[1]["results"][0]
        assert "tokens" not in result and 0 <= result["score"] <= 1
        srv.process.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert srv.process.wait(timeout=30) == 0
    finally:
        stop_server(srv)
    assert "Traceback" not in srv.stderr()


def run_serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*assay_cmd(), "serve", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_cli_errors_are_one_line(judges, tiny_lm, tmp_path):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    cases = [
        ([], "--judge DIR"),
        (["--judge", str(tmp_path / "missing")], "does not exist"),
        (["--judge", str(tiny_lm)], "holds no judge"),
        (["--judge", str(judges), "--lm", str(judges / "scorer")], "not a language_model run"),
        (["--judge", str(judges), "--port", str(port)], f"cannot listen on 127.0.0.1:{port}"),
        (["--judge", str(judges), "--set", "limits.max_texts=0"], "limits.max_texts"),
    ]
    try:
        for args, message in cases:
            out = run_serve(*args)
            assert out.returncode == 2 and "Traceback" not in out.stderr, (args, out.stderr)
            assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, (args, out.stderr)
    finally:
        busy.close()
