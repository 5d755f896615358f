"""The `heldout` corpus: text outside tiny-shakespeare, decided by measurement."""

from assay.data.corpus import (
    HELDOUT_BOOKS,
    HELDOUT_MAX_SHARE,
    is_play,
    load_corpus,
    overlap_share,
    split_corpus,
    tinyshakespeare_lines,
)


def test_heldout_is_disjoint_from_tinyshakespeare_by_the_rule():
    reference = tinyshakespeare_lines()
    heldout = load_corpus("heldout")
    assert heldout.name == "heldout" and heldout.n_chars > 3_000_000
    for doc in heldout.documents:
        assert overlap_share(doc.text, reference) < HELDOUT_MAX_SHARE, doc.id
    ids = [d.id for d in heldout.documents]
    assert ids[-len(HELDOUT_BOOKS) :] == list(HELDOUT_BOOKS)
    plays = ids[: -len(HELDOUT_BOOKS)]
    assert {"Hamlet", "Macbeth", "King Lear", "Twelfth Night"} <= set(plays)
    # what the rule drops: plays tiny-shakespeare holds (well above the threshold) and the poems
    works = {d.id: d.text for d in load_corpus("shakespeare").documents}
    dropped = set(works) - set(plays)
    contained = {"Coriolanus", "Romeo and Juliet", "King Richard II", "The Tempest", "The Winter's Tale"}
    assert contained <= dropped and {"Sonnets", "The Rape of Lucrece"} <= dropped
    for title in dropped:
        assert not is_play(works[title]) or overlap_share(works[title], reference) > 10 * HELDOUT_MAX_SHARE, title
    assert len(plays) == 28


def test_the_overlap_measure():
    reference = tinyshakespeare_lines()
    tiny = load_corpus("tinyshakespeare").documents[0].text
    assert overlap_share(tiny[:20_000], reference) == 1.0
    # whitespace does not hide a copy; short lines do not count
    lines = [line for line in tiny[:20_000].splitlines() if len(line) >= 30][:50]
    spaced = "\n".join("  " + line.replace(" ", "   ") + " " for line in lines)
    assert overlap_share(spaced + "\nExit.\nMy lord?\n", reference) == 1.0
    assert overlap_share("A line of thirty characters or more, never in it.\n", reference) == 0.0


def test_heldout_is_deterministic_and_splits_into_plays_and_bible():
    a, b = load_corpus("heldout"), load_corpus("heldout")
    assert a.digest() == b.digest()
    _, val = split_corpus(a, 0.1, "contiguous")
    assert {"Ruth", "Philippians"} <= {d.id for d in val} and any(d.id == "Twelfth Night" for d in val)
