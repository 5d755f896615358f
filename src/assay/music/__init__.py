"""Music configs: the LLM-facing schema (`schema`), a deterministic synthesizer (`render`) and audio
feature measurement with a plain-English description (`features`). See docs/music.md."""
