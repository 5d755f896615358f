"""assay.io.write_directory: a directory appears whole or not at all."""

from __future__ import annotations

import pytest

from assay.io import write_directory


def test_write_directory_replaces_whole_and_keeps_the_old_one_on_failure(tmp_path):
    target = tmp_path / "out"
    write_directory(target, lambda d: (d / "a.txt").write_text("one"))
    assert (target / "a.txt").read_text() == "one"

    def broken(d):
        (d / "a.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_directory(target, broken)
    assert (target / "a.txt").read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary directory left behind
    write_directory(target, lambda d: (d / "b.txt").write_text("two"))
    assert [p.name for p in target.iterdir()] == ["b.txt"]


def test_write_directory_makes_an_ordinary_folder(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        write_directory(tmp_path / "out", lambda d: (d / "a.txt").write_text("x"))
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755  # not mkdtemp's 0700
