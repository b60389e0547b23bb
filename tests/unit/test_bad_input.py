"""Bad input, everywhere (issue 17): every command, given wrong arguments, a missing or
malformed file or a name the site does not have, stops with exit 2 and one line naming what
is wrong: no traceback, nothing written (inventory/, opsctl's state and cache directories, the
input files) and no host asked (`ssh`, `scp`, `rsync`, `ansible-playbook` on PATH are stand-ins
that record being called and fail).

The committed sites `reference` (reached via the lab, which is not up here) and
`example-bastion` (its own SSH: the state directory holds its sudo password and generated
connection, so a command that resolves the connection gets as far as the transport) stand for
the operator's machine. Each case runs in this process through `opsctl.cli.main.main`, which
is where errors become messages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from opsctl.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SCAN = ROOT / "tests" / "unit" / "results" / "hdev-after-hardening.json"
EX = ("--site", "example-bastion")
REF = ("--site", "reference")
NOT_A_SITE = "no directory"  # what an unknown site name is told

# (argv, words the one error line must hold). `@name` is a file or directory the fixture
# makes (`@name/rest` a path under it); the same tokens may appear among the words.
CASES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    # the command line itself
    (("nosuchcommand",), ("No such command", "nosuchcommand")),
    (("status", "--bogus"), ("No such option", "--bogus")),
    # site
    (("site", "validate", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("site", "validate", "@nodir"), ("@nodir", NOT_A_SITE)),
    (("site", "validate", "@notasite"), ("@notasite/hosts.yml", "file not found")),
    (("site", "validate", "@emptyhosts"), ("hosts.yml", "file is empty")),
    (("site", "show", "@badsiteyml"), ("site.yml", "malformed YAML")),
    (("site", "validate", "@listsiteyml"), ("site.yml", "site", "valid dictionary")),
    (("site", "show", "nosuch", "-o", "json"), ("nosuch", NOT_A_SITE)),
    (("site", "new", "reference"), ("NAME", "already exists")),
    (("site", "new", "Bad/Name"), ("NAME", "Bad/Name")),
    (("site", "new", "prov1", "--from", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("site", "new", "prov1", "--cidr-base", "notacidr"), ("--cidr-base", "notacidr")),
    (("site", "new", "prov1", "--national-gateway", "gw"), ("--national-gateway", "'gw'")),
    (("site", "use", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("site", "use", "reference", "--clear"), ("NAME or --clear",)),
    (("site", "ssh-config", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("site", "password", "status", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("site", "password", "rotate", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("site", "password", "rotate", "example-bastion", "--via", "bogus"), ("--via", "bogus")),
    (("site", "ssh-config", "example-bastion", "--via", "bogus"), ("--via", "bogus")),
    (("site", "trust", "reference", "--limit", "NOSUCH"),
     ("--limit: NOSUCH: no such host in site reference",)),
    (("site", "trust", "example-bastion", "--limit", "NOSUCH"),
     ("--limit: NOSUCH: no such host in site example-bastion",)),
    (("site", "trust", "example-bastion", "--replace", "NOSUCH"),
     ("--replace: NOSUCH: no such host in site example-bastion",)),
    (("site", "trust", "example-bastion", "--known-hosts", "@missing"),
     ("@missing", "cannot read")),
    (("site", "trust", "example-bastion", "--known-hosts", "@empty"), ("@empty", "no key")),
    (("site", "boundary", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("site", "boundary", "reference", "--format", "pdf"), ("boundary format", "pdf")),
    (("site", "boundary", "reference", "--out", "@nodir/rules.nft"),
     ("--out", "@nodir/rules.nft", "cannot write")),
    # lab (never one of the site's: these stop before any lab is looked at)
    (("lab", "up", "--site", "@nodir"), ("@nodir", NOT_A_SITE)),
    (("lab", "down", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("lab", "status", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("lab", "flows", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("lab", "ssh", *REF, "NOSUCH"), ("HOST: NOSUCH: no such host in site reference",)),
    (("lab", "stop", *REF, "NOSUCH"), ("HOST: NOSUCH: no such host in site reference",)),
    # mirror
    (("mirror", "push", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("mirror", "push", *EX, "--via", "bogus"), ("--via", "bogus")),
    # apply, up, harden, runs
    (("apply", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("apply", *REF, "--limit", "NOSUCH"), ("--limit: NOSUCH: no such host in site reference",)),
    (("apply", *EX, "--limit", "NOSUCH"),
     ("--limit: NOSUCH: no such host in site example-bastion",)),
    (("apply", *REF, "--playbook", "nope.yml"), ("playbook", "nope.yml")),
    (("apply", *REF, "--tags", "nosuchtag"), ("--tags", "nosuchtag")),
    (("apply", *EX, "--forks", "0"), ("--forks", "0")),
    (("apply", *EX, "--engine", "bogus"), ("--engine", "bogus")),
    (("up", "--site", "@nodir"), ("@nodir", NOT_A_SITE)),
    (("harden", *EX, "--limit", "NOSUCH"),
     ("--limit: NOSUCH: no such host in site example-bastion",)),
    (("harden", *REF, "--tags", "hardening-sshd,sshd"), ("--tags", "sshd", "hardening.yml")),
    (("harden", *REF, "--skip-tags", "postgresql"), ("--skip-tags", "postgresql")),
    (("runs", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("runs", "show", "NOSUCHRUN"), ("NOSUCHRUN",)),
    # audit
    (("audit", "show", "--last", "-1"), ("--last", "-1")),
    (("audit", "show", "--last", "0"), ("--last", "0")),
    (("audit", "show", "--last", "x"), ("--last", "'x'")),
    # status
    (("status", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("status", *EX, "--watch", "0"), ("--watch", "0")),
    (("status", *EX, "--via", "bogus"), ("--via", "bogus")),
    # check
    (("check",), ("--local", "--site")),
    (("check", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("check", *REF, "--limit", "NOSUCH"), ("--limit: NOSUCH: no such host in site reference",)),
    (("check", *EX, "--limit", "NOSUCH"),
     ("--limit: NOSUCH: no such host in site example-bastion",)),
    (("check", "--local", "--format", "pdf"), ("--format", "pdf")),
    (("check", "--local", "--format", "html,json"), ("--out",)),
    (("check", "--local", "--format", "html,json", "--out", "@empty/reports"),
     ("--out", "@empty/reports", "not a directory")),
    (("check", "--local", "--level", "5"), ("--level", "5")),
    (("check", "--local", "--limit", "app1"), ("--limit", "--site")),
    (("check", "--local", "--fail-on", "bogus"), ("--fail-on", "bogus")),
    (("check", "--local", "--site", "@badexceptions"), ("exceptions.yml", "YAML")),
    (("check", "catalog", "--level", "1"), ("--level", "1")),
    (("check", "units", "--level", "2"), ("--level", "2")),
    (("check", "diff", "@empty", "@scan"), ("@empty", "file is empty")),
    (("check", "diff", "@scan", "@malformed"), ("@malformed", "malformed JSON")),
    (("check", "diff", "@binary", "@scan"), ("@binary", "not UTF-8")),
    (("check", "diff", "@alist", "@scan"), ("@alist", "not an opsctl-check/1 document")),
    (("check", "diff", "@wrongshape", "@scan"), ("@wrongshape", "targets[0].checks[0]")),
    (("check", "diff", "@missing", "@scan"), ("@missing", "does not exist")),
    (("state", "backup", "@notasite/new.bak", "--passphrase-file", "@empty"),
     ("--passphrase-file", "at least 12 characters")),
    (("state", "backup", "@scan", "--passphrase-file", "@malformed"), ("@scan", "exists")),
    (("state", "verify", "@missing", "--passphrase-file", "@missing"),
     ("@missing", "No such file")),
    (("state", "restore", "@scan", "--passphrase-file", "@malformed"),
     ("@scan", "not an opsctl state backup")),
    (("check", "diff", "@scan"), ("Missing argument", "NEW")),
    # db
    (("db", "status", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("db", "switchover", *EX, "--to", "NOSUCHHOST"),
     ("--to: NOSUCHHOST: no such host in site example-bastion",)),
    (("db", "failover", *EX, "--to", "NOSUCHHOST"),
     ("--to: NOSUCHHOST: no such host in site example-bastion",)),
    (("db", "switchover", *EX, "--to", "ex-app1"), ("--to", "ex-app1", "not a database host")),
    (("db", "switchover", *EX, "--max-lag", "-1"), ("--max-lag", "-1")),
    (("db", "failover", *EX, "--timeout", "0"), ("--timeout", "0")),
    # deploy, rollback, releases
    (("deploy", "NOSUCHCOMP", "1.0.0", *EX), ("unknown component", "NOSUCHCOMP")),
    (("deploy", "query-service", "7.7.7", *EX), ("no release", "7.7.7")),
    (("deploy", "query-service", "1.1.0", *EX, "--batch", "0"), ("--batch", "0")),
    (("deploy", "query-service", "1.1.0", *EX, "--health-timeout", "0"),
     ("--health-timeout", "0")),
    (("deploy", "query-service", *EX), ("Missing argument", "VERSION")),
    (("rollback", "NOSUCHCOMP", *EX), ("unknown component", "NOSUCHCOMP")),
    (("rollback", "query-service", *EX, "--batch", "-1"), ("--batch", "-1")),
    (("releases", "NOSUCHCOMP", *EX), ("unknown component", "NOSUCHCOMP")),
    (("releases", "query-service", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    # jobs
    (("jobs", "list", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("jobs", "run", "NOSUCHJOB", *EX), ("no job", "NOSUCHJOB")),
    (("jobs", "run", "backup-full", *EX, "--host", "NOSUCH"), ("backup-full", "NOSUCH")),
    (("jobs", "history", "NOSUCHJOB", *EX), ("no job", "NOSUCHJOB")),
    (("jobs", "history", *EX, "--limit", "0"), ("--limit", "0")),
    # backup
    (("backup", "run", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("backup", "run", *EX, "--type", "bogus"), ("--type", "bogus")),
    (("backup", "list", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("backup", "verify", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("backup", "drill", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("backup", "drill", *EX, "--target-time", "notatime"), ("--target-time", "notatime")),
    # pki
    (("pki", "status", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("pki", "status", *REF, "--limit", "NOSUCH"), ("--limit", "NOSUCH")),
    (("pki", "status", *EX, "--limit", "NOSUCH"), ("--limit", "NOSUCH")),
    (("pki", "status", *EX), ("example-bastion", "no CA yet", "opsctl apply")),
    (("pki", "status", *EX, "-o", "yaml"), ("--output", "yaml")),
    (("pki", "rotate", "--site", "nosuch"), ("nosuch", NOT_A_SITE)),
    (("pki", "rotate", *REF, "--limit", "NOSUCH"), ("--limit", "NOSUCH")),
    (("pki", "rotate", *EX), ("example-bastion", "no CA yet")),
    (("pki", "rotate", *EX, "--ca"), ("example-bastion", "no CA yet")),
    (("pki", "rotate", *EX, "--ca", "--limit", "lb1"), ("--ca", "--limit is refused")),
    (("pki", "rotate", *EX, "--finish"), ("--finish goes with --ca",)),
    (("pki", "rotate", *EX, "--ca", "--finish"), ("example-bastion", "no CA yet")),
]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STAND_INS = ("ssh", "scp", "sftp", "rsync", "ansible-playbook")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The directories opsctl may write to, the stand-ins for remote tools, the input files."""
    base = tmp_path_factory.mktemp("bad-input")
    state, cache, inputs, bin_dir = (base / n for n in ("state", "cache", "inputs", "bin"))
    for d in (cache, inputs, bin_dir, inputs / "notasite"):
        d.mkdir()
    called = base / "called"
    for tool in STAND_INS:
        stand_in = bin_dir / tool
        stand_in.write_text(f'#!/bin/sh\necho "{tool} $*" >> {called}\nexit 255\n')
        stand_in.chmod(0o755)

    files = {"nodir": inputs / "nodir", "notasite": inputs / "notasite",
             "missing": inputs / "missing.json", "scan": SCAN}
    for name, text in {"empty": "", "malformed": '{"schema": "opsctl-check/1",\n',
                       "alist": "[1, 2]\n", "wrongshape": json.dumps(
                           {"schema": "opsctl-check/1", "targets": [{"name": "a", "checks": [1]}]})
                       }.items():
        files[name] = inputs / f"{name}.json"
        files[name].write_text(text)
    files["binary"] = inputs / "binary.json"
    files["binary"].write_bytes(b"\xff\xfe{}")
    for name, source, broken, text in (
            ("emptyhosts", "reference", "hosts.yml", ""),
            ("badsiteyml", "reference", "group_vars/all/site.yml", "site: [\n"),
            ("listsiteyml", "reference", "group_vars/all/site.yml", "site: [1]\n"),
            ("badexceptions", "example-bastion", "security/exceptions.yml", "exceptions: [\n")):
        files[name] = inputs / name
        shutil.copytree(ROOT / "inventory" / source, files[name])
        (files[name] / broken).write_text(text)

    # example-bastion as an operator's machine holds it: its sudo password and connection
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPSCTL_STATE_DIR", str(state))
        from opsctl import connection
        from opsctl.secrets import secrets_dir
        from opsctl.site.model import load_site

        password = secrets_dir("example-bastion") / "ops-password"
        password.parent.mkdir(parents=True, mode=0o700)
        password.write_text("not-a-real-password\n")
        password.chmod(0o600)
        connection.write(connection.resolve(load_site("example-bastion")))
    return {"state": state, "cache": cache, "inputs": inputs, "bin": bin_dir,
            "called": called, **{f"@{k}": v for k, v in files.items()}}


def _expand(token: str, world: dict[str, Path]) -> str:
    if not token.startswith("@"):
        return token
    name, _, rest = token.partition("/")
    return str(world[name] / rest) if rest else str(world[name])


def _snapshot(*roots: Path) -> dict[str, tuple[int, int, int] | None]:
    """Every path under the roots with its size, mtime and mode (None: the root is absent)."""
    seen: dict[str, tuple[int, int, int] | None] = {}
    for root in roots:
        if not root.exists():
            seen[str(root)] = None
            continue
        for path in [root, *root.rglob("*")]:
            st = path.lstat()
            seen[str(path)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return seen


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(
        argv: tuple[str, ...], words: tuple[str, ...], world: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(world["state"]))
    monkeypatch.setenv("OPSCTL_CACHE_DIR", str(world["cache"]))
    monkeypatch.setenv("PATH", f"{world['bin']}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("OPSCTL_SITE", raising=False)
    monkeypatch.delenv("OPSCTL_ROOT", raising=False)
    world["called"].unlink(missing_ok=True)  # an earlier case's failure is its own
    args = [_expand(a, world) for a in argv]
    watched = (ROOT / "inventory", ROOT / "build", world["state"], world["cache"],
               world["inputs"])
    before = _snapshot(*watched)

    try:
        main(args)
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # what a user would see as a traceback
        pytest.fail(f"opsctl {' '.join(args)} raised {type(exc).__name__}: {exc}")
    else:
        code = 0
    out, err = capsys.readouterr()
    out, err = ANSI.sub("", out), ANSI.sub("", err)

    assert "Traceback" not in out + err, err
    assert code == 2, (code, out, err)
    assert err.strip() and "\n" not in err.strip(), f"not one line:\n{err}"
    line = err.strip()
    assert line.startswith("opsctl: "), line
    for word in words:
        assert _expand(word, world) in line, (word, line)
    assert not world["called"].exists(), world["called"].read_text()
    assert _snapshot(*watched) == before, "something was written"
