"""The page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
load it, score a text, check the shaded tokens in the DOM, watch a generation, use a token;
screenshots are written to runs/test-artifacts/ (or $ASSAY_TEST_ARTIFACTS). Without Chromium or
Playwright these tests skip, except under CI (CI=true), where they fail: CI must run them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from assay.data.corpus import load_corpus
from tests.conftest import ROOT
from tests.serve.conftest import TOKEN

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture skips, or fails under CI
    expect = sync_playwright = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("ASSAY_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))
# As root in a sandbox without network: no sandbox, no GPU, no background connections.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TEXT = load_corpus("tinyshakespeare").documents[0].text[:240]


def unavailable(reason: str) -> None:
    """Skip, or under CI fail: there a missing browser is a broken CI image, not a choice."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}, and CI is set: the browser tests must run in CI", pytrace=False)
    pytest.skip(reason)


def missing_browser() -> str | None:
    if sync_playwright is None:
        return "playwright is not installed (pip install -e '.[dev]')"
    if CHROMIUM is None:
        return "Chromium is not installed (Debian: apt-get install chromium; `make test` installs it as root)"
    return None


@pytest.fixture(scope="module")
def browser():
    if reason := missing_browser():
        unavailable(reason)
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield instance
        instance.close()


def new_tab(context):
    tab = context.new_page()
    tab.requests, tab.errors = [], []
    tab.on("request", lambda r: tab.requests.append(r))
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    return tab


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = new_tab(context)
    tab.goto(server.url + "/")
    expect(tab.locator("#models")).to_contain_text("judge: sequence_scorer")  # (no eval: the page's CSP forbids it)
    assert tab.is_hidden("#auth")  # no token asked for
    yield tab
    context.close()


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception), (None, pytest.skip.Exception)]
)
def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="Chromium is not installed"):
        unavailable("Chromium is not installed")


def test_page_scores_a_text_and_shades_every_token(page, server):
    page.fill("#text", TEXT)
    page.click("#score-btn")
    page.wait_for_selector("#tokens .tok")
    api = server.post("/api/score", {"text": TEXT})[1]["results"][0]

    spans = page.eval_on_selector_all(
        "#tokens .tok", "els => els.map(e => [e.textContent, e.dataset.p, getComputedStyle(e).backgroundColor])"
    )
    assert len(spans) == api["n_tokens"] == len(TEXT)
    assert "".join(text for text, _, _ in spans) == TEXT
    for (text, p, colour), token in zip(spans, api["tokens"], strict=True):
        assert text == token["text"] and float(p) == pytest.approx(token["p_replaced"], abs=1e-4)
        alpha = float(colour.rsplit(",", 1)[1].rstrip(")"))  # rgba(207, 34, 46, a): a rises with p
        assert alpha == pytest.approx(0.08 + 0.72 * token["p_replaced"], abs=3 / 255)  # 8-bit alpha
    assert page.inner_text("#score-value") == f"{api['score']:.3f}"
    assert not page.is_hidden("#score-result") and page.is_hidden("#no-tokens")

    page.hover("#tokens .tok >> nth=5")
    tip = page.inner_text("#tip")
    assert tip == f"p(machine-written) = {api['tokens'][5]['p_replaced']:.3f}" and page.is_visible("#tip")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_score.png"), full_page=True)
    assert (ARTIFACTS / "serve_score.png").stat().st_size > 10_000
    urls = [r.url for r in page.requests]
    assert all(url.startswith(server.url) for url in urls), urls  # nothing from elsewhere
    assert page.errors == []


def test_page_shows_server_errors(page):
    page.click("#score-btn")
    assert page.inner_text("#score-error") == "Paste or load a text first."
    page.fill("#text", "x" * 1001)  # over the test server's limit
    page.click("#score-btn")
    expect(page.locator("#score-error")).to_contain_text("the text has 1001 characters; the limit is 1000")


def test_page_streams_a_diffusion_generation(page, server):
    page.click("#tab-generate")
    assert page.is_visible("#panel-generate") and page.is_hidden("#panel-score")
    for field, value in (("#gen-length", "48"), ("#gen-steps", "6"), ("#gen-seed", "4")):
        page.fill(field, value)
    assert page.input_value("#gen-sampler") == "ancestral"  # the default sampler
    page.select_option("#gen-sampler", "confidence")  # its linear schedule is checked below
    page.evaluate(
        """() => { window.maskCounts = [];
        new MutationObserver(() => window.maskCounts.push(document.querySelectorAll('#gen-output .mask').length))
          .observe(document.getElementById('gen-output'), {childList: true}); }"""
    )
    page.click("#gen-btn")
    page.wait_for_selector("#gen-output[data-done=true]")
    # Masks resolve on the unmasking schedule of each window (32 tokens, then 16), never coming back.
    # (Renders that fall between two observer callbacks are not seen: a subsequence of it.)
    schedule = [n * (6 - s - 1) // 6 for n in (32, 16) for s in range(6)]
    seen = iter(schedule)
    counts = page.evaluate("window.maskCounts")
    assert counts and all(any(c == want for want in seen) for c in counts), (counts, schedule)
    assert page.locator("#gen-output .mask").count() == 0
    params = {"length": 48, "steps": 6, "seed": 4, "top_p": 0.95, "sampler": "confidence"}
    want = server.post("/api/generate", params)[1]["text"]
    assert page.inner_text("#gen-output") == want
    assert "done: 48 tokens, 12 denoising steps" in page.inner_text("#gen-status")
    page.screenshot(path=str(ARTIFACTS / "serve_generate.png"), full_page=True)
    assert page.errors == []


def test_page_with_a_token(browser, guarded):
    """A server started with --token: the page takes the token from the URL's fragment (and wipes
    it from the address bar), or asks for it after a 401; the API sees it as a Bearer header."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        tab = new_tab(context)
        tab.goto(guarded.url + "/")  # no token: the page asks for it
        expect(tab.locator("#auth")).to_be_visible()
        expect(tab.locator("#models")).to_contain_text("needs its token")
        tab.fill("#token", TOKEN)
        tab.click("#token-btn")
        expect(tab.locator("#models")).to_contain_text("judge: sequence_scorer")
        assert tab.is_hidden("#auth")
        tab.fill("#text", TEXT[:80])
        tab.click("#score-btn")
        tab.wait_for_selector("#tokens .tok")
        api = [r for r in tab.requests if "/api/" in r.url]
        assert api[-1].headers["authorization"] == f"Bearer {TOKEN}"
        assert tab.errors == [m for m in tab.errors if "401" in m]  # only the first, refused, /api/models

        fresh = new_tab(browser.new_context())  # a new session: nothing stored
        fresh.goto(f"{guarded.url}/#token={TOKEN}")
        expect(fresh.locator("#models")).to_contain_text("judge: sequence_scorer")
        assert fresh.is_hidden("#auth") and TOKEN not in fresh.url  # the fragment is gone
        fresh.fill("#text", TEXT[:80])
        fresh.click("#score-btn")
        fresh.wait_for_selector("#tokens .tok")
        assert fresh.errors == []
        assert all(r.url.startswith(guarded.url) and TOKEN not in r.url for r in fresh.requests)
        fresh.context.close()
    finally:
        context.close()
