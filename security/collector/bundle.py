"""The collector as the one script a host runs: the fact modules concatenated in a declared
order, without their intra-package imports.

Hosts get a single stdlib-only file on stdin (`python3 -`), so the package's modules, which
import each other for testing and reading, are joined into one namespace. The build is
deterministic (declared order, no times, no paths of this machine): the same sources give the
same bytes, so the script's checksum changes only when a module does. The build refuses a
module it cannot join safely (a name two modules define, an aliased or late sibling import, a
module on disk that the order does not list) instead of producing a script that breaks on a host.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
from pathlib import Path

from security.kept import digest, kept

PACKAGE = "security.collector"
HERE = Path(__file__).resolve().parent
# Dependencies first: every module may use `base`; `audit` and `kernel` use `system`; `run`
# (the registry and entry point) names every group, so it comes last.
MODULES = ("base", "system", "accounts", "pam", "sshd", "packages", "services", "audit", "logs",
           "files", "kernel", "network", "clock", "integrity", "database", "nginx", "run")
NOT_SHIPPED = ("__init__", "bundle")
HEADER = '''#!/usr/bin/env python3
"""opsctl's host fact collector: gathers every fact the check catalog reads, prints one JSON
document (opsctl-facts/1). Standard library only; it only reads, it changes nothing.

Built from security/collector/*.py by security/collector/bundle.py: edit those, not this.
"""

from __future__ import annotations
'''


class BundleError(Exception):
    """The modules cannot be joined into one script; the message names the module and why."""


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _is_sibling_import(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").startswith(PACKAGE)
    if isinstance(node, ast.Import):
        return any(a.name.startswith(PACKAGE) for a in node.names)
    return False


def _module_body(name: str, source: str, defined: dict[str, set[str]]) -> str:
    """The module's text without its docstring, its __future__ import and its sibling imports;
    checks each sibling import against what earlier modules define."""
    tree = ast.parse(source, f"{name}.py")
    drop: set[int] = set()
    for index, node in enumerate(tree.body):
        docstring = index == 0 and isinstance(node, ast.Expr) and \
            isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if _is_sibling_import(node):
            _check_sibling_import(name, node, defined)
        if docstring or future or _is_sibling_import(node):
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    nested = [n for n in ast.walk(tree) if _is_sibling_import(n) and n not in tree.body]
    if nested:
        raise BundleError(f"{name}.py:{nested[0].lineno}: a sibling import inside a function "
                          "cannot be bundled; import at the top of the module")
    kept = [line for number, line in enumerate(source.splitlines(), 1) if number not in drop]
    return "\n".join(kept).strip("\n")


def _check_sibling_import(name: str, node: ast.AST, defined: dict[str, set[str]]) -> None:
    if not isinstance(node, ast.ImportFrom) or node.level > 0:
        raise BundleError(f"{name}.py:{node.lineno}: import siblings as "
                          f"`from {PACKAGE}.MODULE import NAME`")
    sibling = (node.module or "").removeprefix(PACKAGE + ".")
    if sibling not in defined:
        raise BundleError(f"{name}.py:{node.lineno}: imports {node.module}, which is not "
                          "bundled before it (security/collector/bundle.py MODULES)")
    for alias in node.names:
        if alias.asname:
            raise BundleError(f"{name}.py:{node.lineno}: `as {alias.asname}`: one script has "
                              "one namespace, so a sibling's name cannot be renamed")
        if alias.name not in defined[sibling]:
            raise BundleError(f"{name}.py:{node.lineno}: {sibling} defines no {alias.name}")


def build_script(directory: Path = HERE) -> str:
    """The collector script from the modules in `directory`."""
    on_disk = sorted(p.stem for p in directory.glob("*.py") if p.stem not in NOT_SHIPPED)
    if sorted(MODULES) != on_disk:
        raise BundleError(f"{directory}: modules on disk {on_disk} are not the bundle's "
                          f"order {sorted(MODULES)}: list each in MODULES")
    defined: dict[str, set[str]] = {}
    parts = [HEADER]
    for name in MODULES:
        source = (directory / f"{name}.py").read_text(encoding="utf-8")
        tree = ast.parse(source, f"{name}.py")
        names = _defined_names(tree)
        for other, theirs in defined.items():
            clash = sorted(names & theirs)
            if clash:
                raise BundleError(f"{name}.py and {other}.py both define {', '.join(clash)}: "
                                  "one script has one namespace")
        parts.append(f"\n# {'=' * 64} security/collector/{name}.py\n\n"
                     + _module_body(name, source, defined) + "\n")
        defined[name] = names
    return "".join(parts)


@functools.cache
def collector_script(directory: Path = HERE) -> str:
    """The script every host runs (`python3 -`, the script on stdin), kept (security.kept)
    under the hash of every module on disk and this builder: a command parses the modules
    only after one of them changed."""
    return kept(directory / "__pycache__", "collector.py",
                digest(sorted(directory.glob("*.py"))), lambda: build_script(directory),
                str.encode, bytes.decode)


def script_sha256(script: str | None = None) -> str:
    return hashlib.sha256((script or collector_script()).encode()).hexdigest()


if __name__ == "__main__":
    sys.stdout.write(collector_script())
