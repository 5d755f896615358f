"""`assay serve`: a JSON API and one web page to score, inspect and generate text (docs/serve.md).

config.py      the options (what to load, where to listen, request limits)
models.py      loading the judge and the optional LM once; what /api/models reports
batcher.py     concurrent /api/score requests share model calls; the bounded queue (503)
generation.py  /api/generate, optionally streamed step by step; stopped when its client leaves
app.py         the FastAPI app: routes, body limits, one-line JSON errors
security.py    who may call it: token, Host allow-list, JSON-only POSTs, the page's CSP
server.py      binding the socket and running uvicorn
static/        the page (plain HTML/CSS/JS, nothing fetched from elsewhere)
"""
