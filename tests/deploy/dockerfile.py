"""A Dockerfile read into stages of instructions (continuation lines
joined, comments dropped), for the static checks of test_dockerfile.py."""

import json
import re
import shlex


class Instruction:
    def __init__(self, keyword, args, line):
        self.keyword = keyword.upper()
        self.args = args
        self.line = line

    def exec_form(self):
        """The JSON array of an exec-form argument (CMD [...]), or None."""
        m = re.search(r"(\[.*\])\s*$", self.args)
        if not m:
            return None
        try:
            return json.loads(m.group(1))
        except ValueError:
            return None

    def flags_and_words(self):
        """--flag=value options and the remaining shell words."""
        words = shlex.split(self.args)
        flags = {}
        while words and words[0].startswith("--"):
            key, _, value = words.pop(0)[2:].partition("=")
            flags[key] = value
        return flags, words


def parse(text):
    """[stages]; a stage is {"name", "base", "instructions": [Instruction]}."""
    stages = []
    logical, start = "", 0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if logical and line.lstrip().startswith("#"):
            continue
        if not logical:
            start = no
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.strip().partition(" ")
        ins = Instruction(keyword, args.strip(), start)
        logical = ""
        if ins.keyword == "FROM":
            words = ins.args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"name": name, "base": words[0], "instructions": []})
        elif not stages:
            raise ValueError("line %d: %s before FROM" % (start, ins.keyword))
        stages[-1]["instructions"].append(ins)
    return stages


def apt_packages(run_args):
    """Packages named after `apt-get install` in a RUN line."""
    pkgs = []
    for part in re.split(r"&&|;", run_args):
        words = part.split()
        if "apt-get" in words and "install" in words:
            pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs
