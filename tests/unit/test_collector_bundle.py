"""The one script hosts run, joined from the collector's modules: the same bytes from the same
sources, the standard library only, and it runs as `python3 -` printing every fact group."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from security.collector import run
from security.collector.bundle import (
    HERE,
    MODULES,
    BundleError,
    build_script,
    collector_script,
    script_sha256,
)

DEBIAN_PYTHON = Path("/usr/bin/python3")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_two_builds_are_the_same_bytes(tmp_path: Path) -> None:
    first, second = build_script(), build_script()
    assert sha256(first) == sha256(second) == script_sha256()
    # nothing of where it was built: a copy of the sources elsewhere gives the same script
    copy = tmp_path / "elsewhere"
    shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert sha256(build_script(copy)) == sha256(first)
    assert collector_script() is collector_script()  # built once per process


def test_the_built_script_is_kept_until_a_module_changes(tmp_path: Path) -> None:
    copy = tmp_path / "collector"
    shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    built = collector_script.__wrapped__(copy)
    kept = list((copy / "__pycache__").glob("collector.py-*"))
    assert len(kept) == 1 and kept[0].read_text() == built == build_script(copy)
    # the next command reads it instead of building: what is kept is what it runs
    kept[0].write_text(built + "# kept\n")
    assert collector_script.__wrapped__(copy).endswith("# kept\n")
    # a changed module is built again, and the old script goes
    (copy / "clock.py").write_text((copy / "clock.py").read_text() + "\nCHANGED = 1\n")
    rebuilt = collector_script.__wrapped__(copy)
    assert "CHANGED = 1" in rebuilt
    assert [p.read_text() for p in (copy / "__pycache__").glob("collector.py-*")] == [rebuilt]
    # a module on disk the order does not list is refused, cached or not
    (copy / "stray.py").write_text("X = 1\n")
    with pytest.raises(BundleError, match="stray"):
        collector_script.__wrapped__(copy)


def test_an_unwritable_cache_only_costs_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "collector"
    shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "__pycache__").write_text("a file where the cache directory would be")
    assert collector_script.__wrapped__(copy) == build_script(copy)


def test_the_modules_come_in_the_declared_order() -> None:
    script = collector_script()
    marks = [script.index(f"security/collector/{name}.py\n") for name in MODULES]
    assert marks == sorted(marks)
    assert script.startswith("#!/usr/bin/env python3\n")


def test_the_script_imports_the_standard_library_only() -> None:
    tree = ast.parse(collector_script())
    imported = set()
    for node in ast.walk(tree):  # function-level imports too (pwd, grp)
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.add((node.module or "").split(".")[0])
    assert imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, \
        imported - set(sys.stdlib_module_names)
    compile(collector_script(), "<collector>", "exec")


def test_the_script_runs_as_a_host_runs_it() -> None:
    # Debian's own Python with no venv and no site-packages, when this machine has it.
    python = [str(DEBIAN_PYTHON), "-I", "-"] if DEBIAN_PYTHON.exists() else [sys.executable, "-"]
    done = subprocess.run(python, input=collector_script(), capture_output=True, text=True,
                          timeout=120, check=False, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["schema"] == "opsctl-facts/1"
    assert set(doc["facts"]) == set(run.FACTS)
    bugs = {name: value["error"] for name, value in doc["facts"].items()
            if isinstance(value, dict) and "collector bug" in str(value.get("error", ""))}
    assert bugs == {}


def test_one_group_by_name() -> None:
    done = subprocess.run([sys.executable, "-", "system", "sysctl"], input=collector_script(),
                          capture_output=True, text=True, timeout=60, check=True)
    assert set(json.loads(done.stdout)["facts"]) == {"system", "sysctl"}


# ---------------------------------------------------------------- what the build refuses

@pytest.fixture
def sources(tmp_path: Path) -> Path:
    copy = tmp_path / "collector"
    shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def add_to(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_a_name_two_modules_define_is_refused(sources: Path) -> None:
    add_to(sources / "nginx.py", "\n\ndef lines(text):\n    return []\n")
    with pytest.raises(BundleError, match="nginx.py and base.py both define lines"):
        build_script(sources)


def test_a_renamed_sibling_import_is_refused(sources: Path) -> None:
    text = (sources / "sshd.py").read_text().replace(
        "from security.collector.base import FactError, num, run",
        "from security.collector.base import FactError, num\n"
        "from security.collector.base import run as run_command")
    (sources / "sshd.py").write_text(text)
    with pytest.raises(BundleError, match="as run_command"):
        build_script(sources)


def test_an_import_of_a_later_module_or_a_missing_name_is_refused(sources: Path) -> None:
    system = (sources / "system.py").read_text()
    (sources / "system.py").write_text(system.replace(
        "import socket\n", "import socket\n\nfrom security.collector.run import FACTS\n", 1))
    with pytest.raises(BundleError, match="imports security.collector.run, which is not bundled"):
        build_script(sources)
    (sources / "system.py").write_text(system.replace(
        "import socket\n", "import socket\n\nfrom security.collector.base import nothing\n", 1))
    with pytest.raises(BundleError, match="base defines no nothing"):
        build_script(sources)


def test_a_sibling_import_inside_a_function_is_refused(sources: Path) -> None:
    add_to(sources / "nginx.py",
           "\n\ndef late():\n    from security.collector.base import read\n    return read\n")
    with pytest.raises(BundleError, match="inside a function"):
        build_script(sources)


def test_a_module_the_order_does_not_list_is_refused(sources: Path) -> None:
    (sources / "mail.py").write_text('"""Mail."""\n')
    with pytest.raises(BundleError, match="list each in MODULES"):
        build_script(sources)
