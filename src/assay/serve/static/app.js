// The page of `assay serve`: score a text (gauge + shaded tokens) and watch diffusion generate.
// Plain JS, no libraries; it talks only to this server's /api/*.
"use strict";

const $ = (id) => document.getElementById(id);
const tip = $("tip");

function showError(el, message) {
  el.textContent = message;
  el.hidden = !message;
}

// --- the token (a server started with --token) ---------------------------------------------
// It comes from the URL's fragment (http://host:port/#token=...: a fragment is never sent to a
// server, and is wiped from the address bar at once) or from the form shown after a 401; it is
// kept in sessionStorage (this tab only) and sent as `Authorization: Bearer ...` to /api/*.
let token = sessionStorage.getItem("assay-token") || "";
const fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromFragment) {
  token = fromFragment;
  sessionStorage.setItem("assay-token", token);
  history.replaceState(null, "", location.pathname + location.search);
}

function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  return fetch(path, { ...options, headers }).then((response) => {
    if (response.status === 401) $("auth").hidden = false;
    return response;
  });
}

$("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("assay-token", token);
  $("auth").hidden = true;
  loadModels();
});

async function postJSON(path, body) {
  const response = await api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// --- tabs ---------------------------------------------------------------------------------
function selectTab(name) {
  for (const tab of ["score", "generate"]) {
    const on = tab === name;
    $(`tab-${tab}`).classList.toggle("active", on);
    $(`tab-${tab}`).setAttribute("aria-selected", String(on));
    $(`panel-${tab}`).hidden = !on;
  }
}
$("tab-score").addEventListener("click", () => selectTab("score"));
$("tab-generate").addEventListener("click", () => selectTab("generate"));

// --- what is loaded -----------------------------------------------------------------------
let info = null;
function describe(m) {
  return `${m.mode} ${m.n_layer}×${m.n_embd} (${(m.parameters / 1e6).toFixed(2)}M params, ${m.tokenizer} vocab ${m.vocab_size})`;
}
async function loadModels() {
  try {
    const response = await api("/api/models");
    if (response.status === 401) {
      $("models").textContent = "this server needs its token: enter it above";
      return;
    }
    const data = await response.json();
    info = data;
    const parts = [data.judge.sequence_scorer, data.judge.token_classifier].filter(Boolean).map(describe);
    if (data.lm) parts.push("LM: " + describe(data.lm));
    $("models").textContent = "judge: " + parts.join(" · ");
    $("gen-unavailable").hidden = Boolean(data.lm);
    $("gen-btn").disabled = !data.lm;
  } catch (_) {
    $("models").textContent = "could not read /api/models";
  }
}
loadModels();

// --- scoring ------------------------------------------------------------------------------
$("file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) $("text").value = await file.text();
});

function shade(p) {
  // transparent (human) -> red (machine-written)
  return `rgba(207, 34, 46, ${(0.08 + 0.72 * p).toFixed(3)})`;
}

function setGauge(score) {
  const pct = Math.max(0, Math.min(1, score)) * 100;
  $("gauge-fill").style.strokeDasharray = `${pct} 100`;
  $("gauge-needle").style.transform = `rotate(${-90 + 1.8 * pct}deg)`;
  $("score-value").textContent = score.toFixed(3);
}

function renderTokens(result) {
  const box = $("tokens");
  box.replaceChildren();
  const tokens = result.tokens || [];
  $("no-tokens").hidden = tokens.length > 0;
  $("legend").hidden = tokens.length === 0;
  box.hidden = tokens.length === 0;
  const frag = document.createDocumentFragment();
  let at = 0;
  for (const t of tokens) {
    if (t.start > at) frag.append(result.text.slice(at, t.start)); // text no token covers
    const span = document.createElement("span");
    span.className = "tok";
    span.textContent = t.text;
    span.dataset.p = t.p_replaced.toFixed(4);
    span.style.backgroundColor = shade(t.p_replaced);
    frag.append(span);
    at = t.end;
  }
  if (at < result.text.length) frag.append(result.text.slice(at));
  box.append(frag);
}

$("tokens").addEventListener("mousemove", (event) => {
  const span = event.target.closest(".tok");
  if (!span) { tip.hidden = true; return; }
  tip.textContent = `p(machine-written) = ${Number(span.dataset.p).toFixed(3)}`;
  tip.style.left = `${event.clientX + 12}px`;
  tip.style.top = `${event.clientY + 14}px`;
  tip.hidden = false;
});
$("tokens").addEventListener("mouseleave", () => { tip.hidden = true; });

$("score-btn").addEventListener("click", async () => {
  const text = $("text").value;
  showError($("score-error"), "");
  if (!text.trim()) { showError($("score-error"), "Paste or load a text first."); return; }
  $("score-btn").disabled = true;
  $("score-status").textContent = "scoring…";
  const started = performance.now();
  try {
    const data = await (await postJSON("/api/score", { text })).json();
    const result = data.results[0];
    setGauge(result.score);
    renderTokens(result);
    const flagged = (result.tokens || []).filter((t) => t.p_replaced >= 0.5).length;
    $("score-meta").textContent = `${result.n_tokens} tokens` + (result.tokens ? `, ${flagged} with p ≥ 0.5` : "");
    $("score-result").hidden = false;
    $("score-status").textContent = `scored in ${Math.round(performance.now() - started)} ms`;
  } catch (err) {
    showError($("score-error"), err.message);
    $("score-status").textContent = "";
  } finally {
    $("score-btn").disabled = false;
  }
});

// --- generation ---------------------------------------------------------------------------
function renderGeneration(tokens, previous) {
  const box = $("gen-output");
  box.replaceChildren();
  const frag = document.createDocumentFragment();
  tokens.forEach((piece, i) => {
    const span = document.createElement("span");
    if (piece === null) {
      span.className = "mask";
      span.textContent = "░";
    } else {
      span.className = previous && previous[i] === null ? "gen fresh" : "gen";
      span.textContent = piece;
    }
    frag.append(span);
  });
  box.append(frag);
}

$("gen-btn").addEventListener("click", async () => {
  showError($("gen-error"), "");
  const body = {
    prompt: $("gen-prompt").value,
    length: Number($("gen-length").value),
    steps: Number($("gen-steps").value),
    temperature: Number($("gen-temperature").value),
    top_p: Number($("gen-top-p").value),
    seed: Number($("gen-seed").value),
    sampler: $("gen-sampler").value,
    stream: true,
  };
  $("gen-btn").disabled = true;
  $("gen-output").replaceChildren();
  let windows = 1, previous = null, steps = 0;
  try {
    const response = await postJSON("/api/generate", body);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const event = JSON.parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        if (event.event === "start") {
          windows = event.windows;
        } else if (event.event === "step") {
          steps += 1;
          renderGeneration(event.tokens, previous);
          previous = event.tokens;
          $("gen-status").textContent =
            `window ${event.window + 1}/${windows} · step ${event.step + 1}/${event.steps} · ${event.masked} still masked`;
        } else if (event.event === "done") {
          if (!steps) renderGeneration([event.text], null); // a causal LM has no steps
          $("gen-output").dataset.done = "true";
          $("gen-status").textContent = `done: ${event.tokens} tokens, ${steps} denoising steps`;
        } else if (event.event === "error") {
          throw new Error(event.error);
        }
      }
    }
  } catch (err) {
    showError($("gen-error"), err.message);
  } finally {
    $("gen-btn").disabled = !(info && info.lm);
  }
});
