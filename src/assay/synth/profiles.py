"""Prompt profiles: how the vibe and config prompts are written for a given model.

- `plain`: instructions plus the answer's JSON Schema in the system prompt, nothing else. What a
  strong API model needs, and what it has always been sent (the remote default).
- `small`: for a small local model (SmolLM2-135M). Its answers are schema-guided, so the schema is
  not pasted into the prompt (a small model reads it as content and echoes its keys: `tags`,
  `description`, `title`); instead the prompt shows worked examples as earlier chat turns (three
  passages with their vibes; three vibes with their configs), and the instructions are short.
  Unguided (`llm.guided = false`) the prompt is the same, so guided and free answers stay
  comparable; the examples then are all that shows the format.
- `auto` (the default): what was measured best for the step and model (`AUTO`): `small` for the
  configs of the shipped base model (`local/smollm2`), `plain` for everything else: its vibes (the
  examples were copied), API models, and `local/PATH` (a fine-tune made by `assay synth train-sft`
  learned the plain prompt; set `prompt_profile = "small"` for another small base model).

The examples are original passages written for assay (not from any corpus the pipeline ingests),
so no text of a run is ever one of its own examples.
"""

from __future__ import annotations

import json
from typing import Any, Literal

Profile = Literal["auto", "plain", "small"]
PROFILES = ("auto", "plain", "small")


# What `auto` resolves to, per step and model (anything not listed: plain), chosen by measuring both
# profiles on the demo's 20 texts (docs/results.md, "Synthetic-data quality"): for vibes the
# examples made SmolLM2 copy them (relevance AUROC 0.67-0.75 against 0.79 with the plain prompt).
AUTO: dict[str, dict[str, str]] = {"vibes": {}, "configs": {"local/smollm2": "small"}}


def resolve(profile: str, model: str, step: str) -> str:
    """The profile a step uses for `model`: `auto` looked up in `AUTO`, other names as they are."""
    if profile != "auto":
        return profile
    return AUTO[step].get(model, "plain")


def dumps(value: Any) -> str:
    """JSON as the guided decoder writes it (`", "` and `": "`), so examples look like answers."""
    return json.dumps(value, ensure_ascii=False)


# ----------------------------------------------------------------------------- vibes

VIBE_EXAMPLES: list[dict[str, Any]] = [
    {
        "text": "The ship rolled in the dark. Rain beat on the deck, the lanterns swung and went out one "
        "by one, and the old captain stood at the wheel, saying nothing, listening to the timbers groan "
        "as the swell lifted them and let them fall.",
        "tags": ["stormy", "tense", "dark", "lonely"],
        "scene": {
            "xl": "A ship alone on a black sea at night, rain drumming on the deck as the lanterns go out. "
            "The timbers groan under a slow, heavy swell. Tense and lonely, a long wait in the dark.",
            "lg": "A storm at sea at night, rain and groaning timbers. Tense, lonely and dark.",
            "m": "A tense, lonely night at sea, rain drumming on a dark ship.",
            "sm": "stormy night at sea",
            "xs": "tense storm",
        },
        "characters": [
            {
                "name": "the captain",
                "vibes": {
                    "xl": "Silent and watchful at the wheel, he holds his fear inside. Each groan of the "
                    "timbers tightens him, but his hands stay steady. Grim patience in the dark.",
                    "lg": "A silent, steady captain hiding his fear. Grim and patient.",
                    "m": "A grim, silent captain holding steady through the storm.",
                    "sm": "grim silent watch",
                    "xs": "steady dread",
                },
            }
        ],
    },
    {
        "text": "In the morning the women went out to the vineyard, singing. The sun was warm on the "
        "terraces, bees moved among the vines, and the children ran laughing between the rows with "
        "baskets of grapes.",
        "tags": ["joyful", "warm", "bright", "pastoral"],
        "scene": {
            "xl": "A sunny vineyard in the morning, women singing and children laughing between the rows. "
            "Bees hum in the warm air over the terraces. Joyful and unhurried, bright and golden.",
            "lg": "A warm morning harvest in a vineyard, full of singing and laughter. Bright and joyful.",
            "m": "A bright, joyful morning harvest among warm, humming vines.",
            "sm": "sunlit harvest song",
            "xs": "golden joy",
        },
        "characters": [],
    },
]

VIBES_SMALL = """You describe the atmosphere (the "vibe") of a passage for a composer of ambient music: \
the place, the mood, the light, weather, sounds and pace. Not the plot, and never the same words twice.
Answer with JSON: "scene" (the scene's vibe at five lengths: xl three sentences, lg two sentences, \
m one sentence, sm a short phrase, xs 1-3 words){characters}, "tags" (1-6 different mood words)."""


def vibe_messages(text: str, max_characters: int) -> list[dict[str, str]]:
    """The small profile's extraction prompt: short instructions, the examples as earlier turns,
    then the passage."""
    characters = (
        f', "characters" (up to {max_characters} main characters: name and inner state at the same five lengths)'
        if max_characters
        else ', "characters" (leave empty)'
    )
    messages = [{"role": "system", "content": VIBES_SMALL.format(characters=characters)}]
    for example in VIBE_EXAMPLES:
        answer = {
            "scene": example["scene"],
            "characters": example["characters"][:max_characters],
            "tags": example["tags"],
        }
        messages += [
            {"role": "user", "content": f"<text>\n{example['text']}\n</text>"},
            {"role": "assistant", "content": dumps(answer)},
        ]
    messages.append({"role": "user", "content": f"<text>\n{text}\n</text>"})
    return messages


# ----------------------------------------------------------------------------- configs


def _palette(*hexes: str) -> dict[str, Any]:
    return {"colors": [{"hex": h, "weight": w} for h, w in zip(hexes, ("xxl", "xl", "lg", "md", "sm"), strict=True)]}


CONFIG_EXAMPLES: list[dict[str, Any]] = [
    {
        "vibe": "A tense, lonely night at sea, rain drumming on a dark ship.",
        "payload": {
            "thinking": "Slow and dark for the lonely night, a drone for the sea, noise for the rain.",
            "title": "Lanterns Out at Sea",
            "config": {
                "tempo": "slow",
                "root": "d",
                "mode": "minor",
                "brightness": "dark",
                "space": "vast",
                "density": 4,
                "bass": "drone",
                "pad": "dark_sustained",
                "melody": "contemplative_minor",
                "rhythm": "heartbeat",
                "texture": "noise_wash",
                "accent": "wind",
                "motion": "slow",
                "attack": "soft",
                "stereo": "wide",
                "depth": True,
                "echo": "heavy",
                "human": "natural",
                "grain": "gritty",
                "melody_engine": "procedural",
                "phrase_len_bars": 8,
                "melody_density": "sparse",
                "syncopation": "straight",
                "swing": "none",
                "motif_repeat_prob": "often",
                "step_bias": "step",
                "chromatic_prob": "light",
                "cadence_strength": "weak",
                "register_min_oct": 2,
                "register_max_oct": 4,
                "tension_curve": "waves",
                "harmony_style": "cinematic",
                "chord_change_bars": "slow",
                "chord_extensions": "triads",
            },
            "palettes": [
                _palette("#0B1A2E", "#1F3A5F", "#4A6D8C", "#8FA6B8", "#F2C14E"),
                _palette("#101820", "#2D3E50", "#5C7080", "#A3B8C8", "#D9A441"),
                _palette("#1B262C", "#0F4C75", "#3282B8", "#BBE1FA", "#E8A33D"),
            ],
        },
    },
    {
        "vibe": "A bright, joyful morning harvest among warm, humming vines.",
        "payload": {
            "thinking": "Fast, bright and busy in a major key for the joy, light drums and plucks for the work.",
            "title": "Morning in the Vines",
            "config": {
                "tempo": "fast",
                "root": "g",
                "mode": "major",
                "brightness": "very_bright",
                "space": "medium",
                "density": 6,
                "bass": "walking",
                "pad": "bright_open",
                "melody": "rising",
                "rhythm": "kit_light",
                "texture": "shimmer",
                "accent": "pluck",
                "motion": "fast",
                "attack": "sharp",
                "stereo": "medium",
                "depth": False,
                "echo": "subtle",
                "human": "loose",
                "grain": "clean",
                "melody_engine": "pattern",
                "phrase_len_bars": 4,
                "melody_density": "busy",
                "syncopation": "medium",
                "swing": "light",
                "motif_repeat_prob": "sometimes",
                "step_bias": "leapy",
                "chromatic_prob": "none",
                "cadence_strength": "strong",
                "register_min_oct": 4,
                "register_max_oct": 6,
                "tension_curve": "ramp",
                "harmony_style": "pop",
                "chord_change_bars": "fast",
                "chord_extensions": "sevenths",
            },
            "palettes": [
                _palette("#F6E27F", "#E2C044", "#8DB255", "#5B8C2A", "#7A4E2D"),
                _palette("#FFF3B0", "#FFD166", "#A7C957", "#6A994E", "#BC4749"),
                _palette("#FDF0D5", "#F4A259", "#8CB369", "#5B8E7D", "#BC4B51"),
            ],
        },
    },
    {
        "vibe": "A solemn, grieving king alone in a dark, candlelit hall.",
        "payload": {
            "thinking": "Very slow and sparse, soft and still, a sustained pad and a lone bell for the grief.",
            "title": "One Candle Burning",
            "config": {
                "tempo": "very_slow",
                "root": "f",
                "mode": "dorian",
                "brightness": "very_dark",
                "space": "large",
                "density": 2,
                "bass": "sustained",
                "pad": "warm_slow",
                "melody": "minimal",
                "rhythm": "none",
                "texture": "breath",
                "accent": "bells",
                "motion": "static",
                "attack": "soft",
                "stereo": "narrow",
                "depth": True,
                "echo": "medium",
                "human": "natural",
                "grain": "warm",
                "melody_engine": "procedural",
                "phrase_len_bars": 8,
                "melody_density": "very_sparse",
                "syncopation": "straight",
                "swing": "none",
                "motif_repeat_prob": "rare",
                "step_bias": "step",
                "chromatic_prob": "none",
                "cadence_strength": "medium",
                "register_min_oct": 3,
                "register_max_oct": 4,
                "tension_curve": "arc",
                "harmony_style": "ambient",
                "chord_change_bars": "very_slow",
                "chord_extensions": "lush",
            },
            "palettes": [
                _palette("#120E0A", "#2B2118", "#5A4632", "#A67C52", "#F0C987"),
                _palette("#0D0D0D", "#262626", "#4D4033", "#8C6D4F", "#E3B778"),
                _palette("#1A1423", "#372549", "#5D4E6D", "#9D8CA1", "#EACDC2"),
            ],
        },
    },
]

CONFIGS_SMALL = """You are a composer of generative ambient music. Given a vibe inside <vibe>...</vibe>, \
design one piece that fits it: slow, dark, soft and sparse for sad, still or solemn vibes; fast, \
bright, busy and sharp for joyful, wild or angry ones; in between for the rest.
Answer with JSON: "thinking" (one sentence on how the sound fits the vibe), "title" (1-6 words), \
"config" (the music fields), "palettes" (3 colour palettes that fit the vibe, 5 colours each)."""


def config_messages(vibe: str) -> list[dict[str, str]]:
    """The small profile's config prompt: instructions, three vibe -> answer turns, then the vibe."""
    messages = [{"role": "system", "content": CONFIGS_SMALL}]
    for example in CONFIG_EXAMPLES:
        messages += [
            {"role": "user", "content": f"<vibe>{example['vibe']}</vibe>"},
            {"role": "assistant", "content": dumps(example["payload"])},
        ]
    messages.append({"role": "user", "content": f"<vibe>{vibe}</vibe>"})
    return messages
