"""`assay llm check` against the scripted server made to take only llama.cpp's shape (json_object
with a schema), against a closed port, and on the local model."""

from __future__ import annotations

import json
import re
import socket

from assay.llm.testserver import Reply, ScriptedServer
from tests.conftest import one_error, run_cli
from tests.llm.conftest import needs_smollm2


def answer(body: dict) -> Reply:
    """{"answer": true} to the probe, a long text to anything else (usage counted from its words)."""
    if body.get("response_format") or "JSON" in json.dumps(body["messages"]):
        return Reply.json({"answer": True})
    return Reply(content=" ".join(["word"] * min(body.get("max_tokens") or 64, 64)))


def test_check_reports_modes_auto_speed_and_usage(capsys):
    with ScriptedServer(responder=answer, formats={"json_object_schema"}) as server:
        code, out, err = run_cli(capsys, "llm", "check", "--model", "openai/scripted", "--api-base", server.base_url)
        assert code == 0, err
        lines = {line.split()[0]: line for line in out.splitlines() if line.strip() and not line.startswith(" ")}
        assert lines["models"].split()[1] == "scripted" and lines["reachable"].endswith("yes")
        assert "json_schema        rejected: HTTP 500" in out and "Input should be 'text' or 'json_object'" in out
        assert "json_object_schema works" in out
        assert "json_object        rejected" in out  # this endpoint takes json_object with a schema only
        assert "prompt             works" in out  # the schema in the prompt; the answer parsed
        assert lines["auto"] == "auto picks   json_object_schema"
        assert lines["usage"].split()[1] == "reported" and float(lines["tokens/s"].split()[1]) > 0
        assert float(lines["first"].split()[2]) > 0

        code, out, err = run_cli(
            capsys, "llm", "check", "--model", "openai/scripted", "--api-base", server.base_url, "--json"
        )
        report = json.loads(out)
        assert code == 0 and report["auto_mode"] == "json_object_schema" and report["models"] == ["scripted"]
        assert {m["mode"]: m["status"] for m in report["modes"]} == {
            "json_schema": "rejected",
            "json_object_schema": "works",
            "json_object": "rejected",
            "prompt": "works",
        }


def test_check_of_an_endpoint_that_does_not_answer_is_one_error(capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    code, out, err = run_cli(
        capsys, "llm", "check", "--model", "openai/x", "--api-base", url, "--set", "llm.backoff_start_s=0.01"
    )
    assert "reachable    no" in out
    assert "the endpoint did not answer" in one_error(code, err)


@needs_smollm2
def test_check_of_the_local_model(capsys):
    code, out, err = run_cli(capsys, "llm", "check", "--model", "local/smollm2", "--tokens", "8")
    assert code == 0, err
    assert "(local, transformers)" in out and "grammar            works" in out
    assert "auto picks   grammar" in out and "usage        reported" in out
    # the prompt mode decodes freely with the schema in the system turn (no grammar): not an error
    assert re.search(r"^ +prompt +(works|accepted)", out, re.MULTILINE), out
