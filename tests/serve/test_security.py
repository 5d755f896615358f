"""Who may call `assay serve` and how much it takes on: the token, the Host check, JSON-only
POSTs, the bounded queues (503 + Retry-After), and the exposure rules of the CLI."""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from assay.config import validate
from assay.errors import AssayError
from assay.serve.batcher import Batcher, Overloaded
from assay.serve.config import ServerSection
from assay.serve.security import Access, is_loopback, split_host
from tests.serve.conftest import TOKEN, start_server
from tests.serve.test_api import REAL, run_serve


def one_line_error(data, status: int) -> str:
    assert isinstance(data, dict) and data["status"] == status, data
    assert "\n" not in data["error"]
    return data["error"]


# --- exposure: binding beyond loopback needs a token or --no-auth ------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "::ffff:127.0.0.1"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.0.2.1", "10.1.2.3", "2001:db8::1", "no-such-host.invalid"])
def test_hosts_beyond_loopback(host):
    assert not is_loopback(host)


def access(**server) -> Access:
    return Access.from_config(validate(ServerSection, server), environ={"SERVE_TOKEN": TOKEN, "SHORT": "abc"})


def test_beyond_loopback_a_token_or_no_auth_is_required():
    assert access().token is None and access().warning is None  # loopback: nothing needed
    with pytest.raises(AssayError, match="reachable from other machines: give --token"):
        access(host="0.0.0.0")
    assert access(host="0.0.0.0", token=TOKEN).token == TOKEN
    assert access(host="0.0.0.0", token_env="SERVE_TOKEN").token == TOKEN
    assert access(host="127.0.0.1", token=TOKEN).token == TOKEN  # also on loopback
    warned = access(host="0.0.0.0", no_auth=True)
    assert warned.token is None and warned.warning.startswith("warning: serving on 0.0.0.0 without authentication")
    for bad, message in [
        ({"token": "abc"}, "at least 16 visible ASCII characters"),
        ({"token": "x" * 20 + " y"}, "no spaces"),
        ({"token_env": "SHORT"}, "at least 16"),
        ({"token_env": "UNSET"}, "--token-env UNSET: that environment variable is not set"),
        ({"token": TOKEN, "token_env": "SERVE_TOKEN"}, "not both"),
        ({"token": TOKEN, "no_auth": True}, "contradict"),
        ({"allow_hosts": ["a:b"]}, "--allow-host 'a:b' is not a host name"),
    ]:
        with pytest.raises(AssayError, match=message):
            access(**bad)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("LocalHost", ("localhost", None)),
        ("[::1]:80", ("::1", 80)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
        ("judge.example.:443", ("judge.example", 443)),
        ("a:b", None),
        ("[::1", None),
        ("", None),
        ("x:99999", None),
    ],
)
def test_split_host(value, parsed):
    assert split_host(value) == parsed


def test_host_allow_list():
    rules = access(allow_hosts=["judge.example", "proxy.example:443"])
    local = ("127.0.0.1", 8123)
    for ok in (
        "127.0.0.1:8123",
        "localhost:8123",
        "[::1]:8123",
        "judge.example",
        "judge.example:1",
        "proxy.example:443",
    ):
        assert rules.host_allowed(ok, local), ok
    for bad in ("evil.example:8123", "127.0.0.1:8124", "127.0.0.1", "proxy.example", "proxy.example:444", "", None):
        assert not rules.host_allowed(bad, local), bad
    # a wildcard bind: the address the client dialled (an IP literal, never a rebound name)
    wildcard = access(host="0.0.0.0", token=TOKEN)
    assert wildcard.host_allowed("192.0.2.7:8123", ("192.0.2.7", 8123))
    assert not wildcard.host_allowed("0.0.0.0:8123", ("192.0.2.7", 8123))
    assert not wildcard.host_allowed("attacker.example:8123", ("192.0.2.7", 8123))


def test_serve_refuses_to_expose_itself_without_a_token(judges):
    started = time.monotonic()
    out = run_serve("--judge", str(judges), "--host", "0.0.0.0", "--port", "0")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "error: --host 0.0.0.0 is reachable from other machines: give --token TOKEN (or --token-env NAME), "
        "or --no-auth to serve without authentication"
    ]
    assert time.monotonic() - started < 60  # refused before the models are loaded


def serve_in_process(capsys, *args: str) -> tuple[int, list[str]]:
    """(exit status, stderr lines) of `assay serve ARGS` run in this process. The judge is missing,
    so nothing is ever served: an option that were wrongly accepted ends in "does not exist"."""
    from assay.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--judge", "/nonexistent/judges", *args])
    return exit_.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0", "--token", "short"], "error: the token must be at least 16"),
        (["--host", "::", "--token-env", "ASSAY_NO_SUCH_VARIABLE"], "error: --token-env ASSAY_NO_SUCH_VARIABLE: that"),
        (["--host", "0.0.0.0", "--token", TOKEN, "--no-auth"], "error: a token and --no-auth contradict"),
        (["--allow-host", "[::1"], "error: --allow-host '[::1' is not a host name"),
        (["--host", "192.0.2.1"], "error: --host 192.0.2.1 is reachable from other machines"),
        (["--set", "limits.max_queued_texts=0"], "error: invalid config: limits.max_queued_texts"),
    ],
)
def test_access_option_errors_are_one_line(capsys, args, message):
    status, lines = serve_in_process(capsys, *args)
    assert status == 2 and len(lines) == 1 and lines[0].startswith(message), lines


def test_no_auth_prints_a_warning_line(capsys):
    status, lines = serve_in_process(capsys, "--host", "0.0.0.0", "--no-auth")
    assert status == 2 and len(lines) == 2, lines  # the warning, then the missing judge
    assert lines[0].startswith("warning: serving on 0.0.0.0 without authentication (--no-auth)")
    assert lines[1].startswith("error:") and "does not exist" in lines[1]
    status, lines = serve_in_process(capsys, "--host", "0.0.0.0", "--token", TOKEN)
    assert status == 2 and len(lines) == 1 and "does not exist" in lines[0]  # with a token: no warning


# --- the token ----------------------------------------------------------------------------------


def test_the_api_needs_the_token(guarded):
    anonymous = replace(guarded, token=None)
    for auth in (None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x", TOKEN):
        status, data, headers = anonymous.request("GET", "/api/models", headers={"Authorization": auth} if auth else {})
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer", auth
        assert "Authorization: Bearer TOKEN" in one_line_error(data, 401)
    for path in ("/api/score", "/api/generate", "/api/nothing"):
        assert anonymous.post(path, {"text": "O Romeo"})[0] == 401, path
    assert guarded.request("GET", "/api/models")[0] == 200  # (request() sends the token)
    assert guarded.post("/api/score", {"text": "O Romeo"})[0] == 200
    assert anonymous.request("GET", "/api/models", headers={"Authorization": f"bearer {TOKEN}"})[0] == 200
    # the page and the health check stay open: they hold nothing
    for path in ("/", "/static/app.js", "/static/style.css", "/healthz"):
        assert anonymous.request("GET", path)[0] == 200, path


# --- Host and Content-Type ----------------------------------------------------------------------


def test_the_host_header_must_name_this_server(server, guarded):
    port = urlsplit(server.url).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert server.request("GET", "/api/models", headers={"Host": host})[0] == 200, host
    for host in (f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", "localhost", f"judge.example:{port}"):
        for path in ("/api/models", "/", "/healthz"):
            status, data, _ = server.request("GET", path, headers={"Host": host})
            assert status == 400, (host, path)
            assert "does not name this server" in one_line_error(data, 400)
    # --allow-host judge.example: that name, any port (a reverse proxy in front)
    assert guarded.request("GET", "/api/models", headers={"Host": "judge.example"})[0] == 200
    assert guarded.request("GET", "/api/models", headers={"Host": "judge.example:8443"})[0] == 200
    assert guarded.request("GET", "/api/models", headers={"Host": "other.example"})[0] == 400


def test_posts_must_be_json(server):
    body = json.dumps({"text": "O Romeo"}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        for path in ("/api/score", "/api/generate"):
            status, data, _ = server.request("POST", path, body, headers)
            assert status == 415, (content_type, path)
            assert "Content-Type: application/json" in one_line_error(data, 415)
    # and with no Content-Type at all (urllib would add a form one)
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/api/score", body=body)
    response = conn.getresponse()
    assert response.status == 415 and "application/json" in json.loads(response.read())["error"]
    conn.close()
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        assert server.request("POST", "/api/score", body, {"Content-Type": content_type})[0] == 200


# --- backpressure -------------------------------------------------------------------------------


def test_a_full_score_queue_answers_503_with_retry_after(guarded):
    """limits.max_queued_texts=1, batch_texts=1: while the judge scores one text and one waits,
    the rest are refused at once; nothing else goes wrong."""
    text = (REAL * 3)[:8000]  # long enough that the judge is busy while the others arrive
    before = guarded.stats()
    statuses = []
    for _ in range(3):  # (rounds until the queue was seen full; one is enough in practice)
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda _: guarded.request("POST", "/api/score", *score_body(text)), range(24)))
        statuses += [status for status, _, _ in answers]
        refused = [(data, headers) for status, data, headers in answers if status == 503]
        if refused:
            break
    assert set(statuses) <= {200, 503}, statuses
    assert 200 in statuses and refused, statuses
    for data, headers in refused:
        assert headers["Retry-After"] == "1"
        assert "texts are waiting to be scored (the limit is 1)" in one_line_error(data, 503)
    after = guarded.stats()
    assert after["score_refused"] - before["score_refused"] == statuses.count(503)
    assert after["queued_texts"] == 0
    assert guarded.post("/api/score", {"text": "and then it serves again"})[0] == 200


def score_body(text: str) -> tuple[bytes, dict]:
    return json.dumps({"text": text}).encode(), {"Content-Type": "application/json"}


def test_too_many_generations_answer_503_with_retry_after(guarded):
    """limits.max_generations=1: a second generation while one runs is refused."""
    parts = urlsplit(guarded.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = json.dumps({"length": 200, "steps": 512, "stream": True})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    conn.request("POST", "/api/generate", body=body, headers=headers)
    response = conn.getresponse()
    assert json.loads(response.readline())["event"] == "start"
    status, data, hdrs = guarded.request("POST", "/api/generate", b'{"length": 5}', headers)
    assert status == 503 and hdrs["Retry-After"] == "1"
    assert "1 generations are running or waiting (the limit is 1)" in one_line_error(data, 503)
    conn.close()
    deadline = time.monotonic() + 15
    while guarded.stats()["generations_active"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert guarded.post("/api/generate", {"length": 5, "steps": 2})[0] == 200


def test_the_batcher_refuses_past_its_bound():
    """In-process: a slow model, a queue of 2 texts; an empty queue takes any request."""

    async def main():
        from concurrent.futures import ThreadPoolExecutor as Pool

        def slow(texts):
            time.sleep(0.2)
            return [{"text": t} for t in texts]

        with Pool(1) as pool:
            batcher = Batcher(slow, pool, max_texts=1, wait_s=0, max_waiting=2)
            batcher.start()
            first = asyncio.ensure_future(batcher.score(["a"]))
            await asyncio.sleep(0.05)  # the worker has it: the queue is empty
            big = asyncio.ensure_future(batcher.score(["b", "c", "d"]))  # over the bound, but alone: taken
            await asyncio.sleep(0)
            with pytest.raises(Overloaded, match="3 texts are waiting"):
                await batcher.score(["e"])
            with pytest.raises(Overloaded):
                batcher.check()
            assert batcher.refused == 2
            assert [r["text"] for r in await big] == ["b", "c", "d"] and (await first)[0]["text"] == "a"
            assert batcher.waiting == 0
            batcher.check(5)  # empty again: anything goes
            await batcher.stop()

    asyncio.run(main())


# --- the test fixture itself --------------------------------------------------------------------


def test_the_fixture_drains_stderr_and_times_out_on_startup():
    """A server that writes 1 MB to stderr (more than a pipe holds) and never prints its URL: the
    fixture fails after its timeout with the stderr, instead of hanging."""
    chatty = (
        "import sys, time\nfor i in range(20000): sys.stderr.write(f'line {i} ' + 'x' * 40 + '\\n')\ntime.sleep(600)"
    )
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="printed no URL within 3 s") as failure:
        start_server(timeout=3, cmd=[sys.executable, "-c", chatty])
    assert time.monotonic() - started < 15
    assert "line 19999 " in str(failure.value)  # the end of its stderr: all of it was read


def test_the_fixture_reports_a_server_that_exits():
    with pytest.raises(RuntimeError, match=r"did not start \(exit status 3") as failure:
        start_server(cmd=[sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])
    assert "boom" in str(failure.value)
