"""The agents' code as archives (opsctl.archives): the same bytes for the same tree, a new name
when a file changes, and exactly the files the hosts run, where the roles unpack them."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from opsctl.archives import code_archive

ROOT = Path(__file__).resolve().parents[2]


def test_an_agents_archive_holds_its_python_files_under_its_package(tmp_path: Path) -> None:
    for package in ("monitor", "scheduler"):
        with tarfile.open(code_archive(ROOT / package, tmp_path)) as tar:
            members = tar.getmembers()
        wanted = sorted(f"{package}/{p.relative_to(ROOT / package).as_posix()}"
                        for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)
        assert [m.name for m in members] == wanted
        assert {(m.mode, m.mtime, m.uid, m.uname) for m in members} == {(0o644, 0, 0, "")}


def test_the_same_tree_gives_the_same_archive_and_a_change_a_new_one(tmp_path: Path) -> None:
    tree = tmp_path / "src" / "agent"
    shutil.copytree(ROOT / "monitor", tree, ignore=shutil.ignore_patterns("__pycache__"))
    first = code_archive(tree, tmp_path / "a")
    again = code_archive(tree, tmp_path / "b")
    assert (first.name, first.read_bytes()) == (again.name, again.read_bytes())
    assert code_archive(tree, tmp_path / "a") == first  # reused, not rebuilt
    (tree / "agent.py").write_text((tree / "agent.py").read_text() + "\n# changed\n")
    changed = code_archive(tree, tmp_path / "a")
    assert changed.name != first.name and changed.name.startswith("agent-")
