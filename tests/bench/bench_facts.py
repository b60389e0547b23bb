"""What a host's facts cost the control node on every task: Ansible's own copy of them.

For every task on every host, Ansible's VariableManager copies the host's facts into the
task's variables: `namespace_facts` (under `ansible_facts`) and, with `inject_facts_as_vars`
(Ansible's default, off in opsctl's ansible.cfg since stop 27), `clean_facts` as well (another
deep copy, and every fact name matched against every connection plugin's prefix). This times
both on this machine's own facts, gathered here with the setup module: all of them (Ansible's
default) against the subset the base play gathers (virtualization only).

    .venv/bin/python tests/bench/bench_facts.py --rounds 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import timeit
from pathlib import Path

from ansible.plugins.loader import init_plugin_loader
from ansible.vars.clean import clean_facts, namespace_facts

SUBSETS = {"all (Ansible's default)": "all", "virtual (the base play)": "!all,!min,virtual"}


def gather(subset: str) -> dict:
    ansible = Path(sys.executable).parent / "ansible"
    done = subprocess.run([str(ansible), "localhost", "-c", "local", "-o", "-m",
                           "ansible.builtin.setup", "-a", f"gather_subset={subset}"],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout[done.stdout.index("{"):])["ansible_facts"]


def per_call_ms(function, facts: dict, rounds: int) -> float:
    runs = timeit.repeat(lambda: function(facts), number=rounds, repeat=5)
    return statistics.median(runs) / rounds * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    init_plugin_loader()
    for label, subset in SUBSETS.items():
        facts = gather(subset)
        size = len(json.dumps(facts))
        print(f"{label:26s} {len(facts):4d} facts {size:7,d} bytes   "
              f"namespace_facts {per_call_ms(namespace_facts, facts, args.rounds):6.2f} ms   "
              f"clean_facts {per_call_ms(clean_facts, facts, args.rounds):6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
