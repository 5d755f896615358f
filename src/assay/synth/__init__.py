"""The synthetic-data pipeline `assay synth` (docs/synth.md): text -> vibes -> best-of-N music configs
-> scores -> dataset splits, and a small local model fine-tuned on the result (docs/sft.md).

    config.py          SynthConfig: one TOML tree for every step ([llm], [runner], [ingest], ...)
    ingest.py          local texts (Shakespeare, the KJV, folders, JSONL) -> input rows
    vibes.py, noise.py the vibes step (a pipeline step) and its typo noise; schema.py its JSON answer
    profiles.py        prompt profiles (plain / small with worked examples) of the vibes and configs prompts
    quality.py         quality measures (`assay synth inspect`, and each step's summary); moods.txt the tag vocabulary
    music_configs.py   the configs step: best-of-N music payloads per vibe, validity of each
    score.py           the score step; scorers/ (audio, reward, llm_judge, assay_judge, custom)
    benchmark.py       config sources side by side (`assay synth benchmark`)
    sft/               LoRA SFT of the local model, merge, GRPO mechanics

It uses the `music` feature's public API (the payload schema, validity, the renderer) and the
`judges` one (the assay_judge scorer).
"""
