"""Edits to a site's files (hosts.yml, site.yml) that keep what the operator wrote there:
comments, order and layout (a round trip through ruamel.yaml). An edit is judged on a copy of
the site first: a site it would break is refused (exit 2) and the files are left as they were."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from opsctl.errors import InvalidInput, Problem
from opsctl.site.model import Site, load_site
from opsctl.site.yamlfile import display_path

HOSTS_FILE = "hosts.yml"
SITE_FILE = "group_vars/all/site.yml"

Edit = Callable[[CommentedMap], None]


def _yaml() -> YAML:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _groups(data: CommentedMap) -> Iterator[tuple[str, CommentedMap]]:
    """Every group mapping of the inventory tree, with its name."""
    stack = [(str(name), body) for name, body in data.items()]
    while stack:
        name, body = stack.pop(0)
        if isinstance(body, CommentedMap):
            yield name, body
            stack += [(str(n), b) for n, b in (body.get("children") or {}).items()]


def add_host(name: str, address: str, groups: list[str]) -> Edit:
    """The host under each of `groups`, its address (ansible_host) under the first (its
    zone's group, where the reference site keeps each host's address)."""
    def edit(data: CommentedMap) -> None:
        found = {g: body for g, body in _groups(data) if g in groups}
        missing = [g for g in groups if g not in found]
        if missing:
            raise InvalidInput([Problem(HOSTS_FILE, f"group {g}", "no such group")
                                for g in missing])
        for i, group in enumerate(groups):
            body = found[group]
            if body.get("hosts") is None:
                # a group that has only children gets its hosts first, as Ansible lists them
                body.insert(0, "hosts", CommentedMap())
            entry = CommentedMap(ansible_host=address) if i == 0 else None
            body["hosts"][name] = entry
    return edit


def remove_hosts(names: Iterable[str]) -> Edit:
    """The hosts out of every group; a group left with no hosts keeps an empty mapping
    (the site's validation says whether it may be empty)."""
    gone = set(names)

    def edit(data: CommentedMap) -> None:
        for _, body in _groups(data):
            hosts = body.get("hosts")
            if isinstance(hosts, CommentedMap):
                for host in [h for h in hosts if h in gone]:
                    del hosts[host]
    return edit


def _move_trailing_comment(source: CommentedMap, target: CommentedMap) -> None:
    """The comment block after a list's last item (ruamel keeps it on that item's last key)
    goes with whichever item is last now, so it stays above the key it introduces."""
    if not source or not target:
        return
    tokens = source.ca.items.get(list(source)[-1])
    if not tokens or len(tokens) < 3 or tokens[2] is None or not tokens[2].value.startswith("\n"):
        return  # nothing after the item, or an end-of-line comment: that stays with it
    target.ca.items[list(target)[-1]] = [None, None, tokens[2], None]
    tokens[2] = None


def put_item(items: CommentedSeq, item: CommentedMap, key: str = "name") -> None:
    """`item` in a list of mappings: in place of the one with the same `key`, else last;
    an equal one stays as it is."""
    for i, old in enumerate(items):
        if old.get(key) == item[key]:
            if dict(old) != dict(item):
                _move_trailing_comment(old, item)
                items[i] = item
            return
    if items:
        _move_trailing_comment(items[-1], item)
    items.append(item)


def drop_item(items: CommentedSeq, value: object, key: str = "name") -> bool:
    """The mapping whose `key` is `value` out of the list; whether there was one."""
    for i, old in enumerate(items):
        if old.get(key) == value:
            if i == len(items) - 1 and i > 0:
                _move_trailing_comment(old, items[i - 1])
            del items[i]
            return True
    return False


def edited_text(text: str, edit: Edit) -> str:
    yaml = _yaml()
    data = yaml.load(text)
    edit(data)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def trial(site: Site, files: Mapping[str, str | bytes]) -> Site:
    """The site as it would be with `files` (paths in its directory) written, loaded from a
    copy; nothing is written (InvalidInput names the real files and what would break)."""
    with tempfile.TemporaryDirectory(prefix="opsctl-site-") as tmp:
        copy = Path(tmp) / site.directory.name
        shutil.copytree(site.directory, copy, symlinks=True)
        _put(copy, files)
        try:
            return load_site(copy)
        except InvalidInput as exc:
            real = display_path(site.directory)
            raise InvalidInput([Problem(p.file.replace(str(copy), real), p.key, p.reason)
                                for p in exc.problems]) from None


def judge(site: Site, edit: Edit, name: str = HOSTS_FILE) -> str:
    """The text of the site's file `name` after `edit`, once the site it makes loads
    cleanly; nothing is written."""
    text = edited_text((site.directory / name).read_text(), edit)
    trial(site, {name: text})
    return text


def _put(directory: Path, files: Mapping[str, str | bytes]) -> None:
    """Each file replaced whole in one rename (readers see the old or the new)."""
    for name, content in files.items():
        path = directory / name
        staged = path.with_name(f".{path.name}.tmp")
        if isinstance(content, bytes):
            staged.write_bytes(content)
        else:
            staged.write_text(content)
        staged.replace(path)


def write(site: Site, text: str, name: str = HOSTS_FILE) -> Site:
    """The file replaced by `text` (from `judge`); the site as it is now."""
    return write_files(site, {name: text})


def write_files(site: Site, files: Mapping[str, str | bytes]) -> Site:
    _put(site.directory, files)
    return load_site(site.directory)


def edit_hosts(site: Site, edit: Edit) -> Site:
    """hosts.yml of `site` edited in place, once the edited site loads cleanly."""
    return write(site, judge(site, edit))
