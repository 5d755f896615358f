"""The shipped reprompt library and the validation of template files."""

from __future__ import annotations

import pytest

from assay.correct.templates import STYLES, Template, load_templates, parse_templates
from assay.errors import ConfigError


def test_shipped_library_loads_and_is_large_and_varied():
    templates = load_templates()
    assert len(templates) >= 30
    assert len({t.id for t in templates}) == len(templates)
    assert {t.style for t in templates} == set(STYLES)
    for t in templates:
        text = t.render(question="What is 6 * 7?", previous_answer="41")
        assert "{" not in text and text.strip()


def test_render_fills_placeholders():
    t = Template("x", "neutral", "Q: {question} A: {previous_answer} {{literal}}")
    assert t.render("q?", "a") == "Q: q? A: a {literal}"


def test_load_from_a_file(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[[template]]\nid = "a1"\nstyle = "critical"\ntext = "Sure about {previous_answer}?"\n')
    assert load_templates(path) == [Template("a1", "critical", "Sure about {previous_answer}?")]


def _one(id="a", style="neutral", text="Check {previous_answer}.", extra=""):
    return f'[[template]]\nid = "{id}"\nstyle = "{style}"\ntext = "{text}"\n{extra}'


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (_one(text="Use {answer}."), r"unknown placeholder\(s\) \{answer\}"),
        (_one(text="Bad { brace"), "malformed braces"),
        (_one() + _one(), "duplicate template id 'a'"),
        (_one(text="   "), "text is empty"),
        (_one(style="shouty"), "unknown style 'shouty'"),
        (_one(id="stop"), "reserved"),
        (_one(id="Bad Id"), "must be lower-case"),
        (_one(extra="weight = 2\n"), r"unknown key\(s\) weight"),
        ('[[template]]\nid = "a"\nstyle = "neutral"\n', r"missing key\(s\) text"),
        ("", "no \\[\\[template\\]\\] tables"),
        ("[[template]\n", "not valid TOML"),
        ('title = "x"\n' + _one(), "unknown top-level key"),
    ],
)
def test_validation_errors_are_one_line(toml, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_templates(toml, source="lib.toml")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("lib.toml")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read template file"):
        load_templates(tmp_path / "nope.toml")
