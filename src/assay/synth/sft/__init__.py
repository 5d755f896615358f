"""Supervised fine-tuning (LoRA) of a local causal LM on the synthetic music-config data, and the
mechanics of GRPO on top of it (docs/sft.md).

    config.py      SFTConfig: data, model, lora, train, run sections
    data.py        split rows -> chat messages -> token ids with assistant-only labels
    lora.py        base model loading, the LoRA wrapper, adapter save/load, merge into an HF directory
    checkpoint.py  the resumable checkpoint: adapter, AdamW state, data cursor, RNG (safetensors + JSON)
    loop.py        the training loop (`train_sft`)
    grpo.py        group-relative policy optimisation: sampling, advantages, loss with a KL penalty
"""
