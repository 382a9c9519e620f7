"""The Dockerfile, checked without a Docker engine: dockerfile-utils lint
(npm, pinned in tools/deploy), multi-stage, every COPY source present,
the runtime stage's packages exactly those of `ldd bin/cart-service`
(dpkg -S), non-root, and ENTRYPOINT/EXPOSE/HEALTHCHECK/STOPSIGNAL as
README documents them."""

import glob
import json
import os
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import dockerfile  # noqa: E402

DOCKERFILE = os.path.join(ROOT, "Dockerfile")
BINARY = os.path.join(ROOT, "bin", "cart-service")
LINT = os.path.join(ROOT, "tools", "deploy", "node_modules", ".bin", "dockerfile-utils")
ENTRYPOINT = ["/usr/local/bin/cart-service"]
HEALTHCHECK = ENTRYPOINT + ["healthcheck"]
# Runtime packages that are not shared libraries, each with its reason.
NOT_LIBRARIES = {"ca-certificates": "the CA bundle for HTTPS (AWS, the JWKS URL)"}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def ldd_packages(binary):
    """{Debian package: [shared objects]} of every library ldd lists."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True,
                         check=True).stdout
    paths = []
    for line in out.splitlines():
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if m:                             # linux-vdso has no file
            paths.append(m.group(1))
    # one dpkg -S for all: by the path ldd names, else the file it links to
    asked = paths + [os.path.realpath(p) for p in paths]
    owners = {}
    res = subprocess.run(["dpkg", "-S"] + asked, capture_output=True, text=True)
    for line in res.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        owners[path.strip()] = pkg.split(":")[0]
    pkgs = {}
    for path in paths:
        owner = owners.get(path) or owners.get(os.path.realpath(path))
        if owner is None:
            raise AssertionError("no Debian package holds %s" % path)
        pkgs.setdefault(owner, []).append(path)
    return pkgs


class DockerfileTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.stages = dockerfile.parse(read(DOCKERFILE))
        cls.final = cls.stages[-1]
        cls.readme = read(os.path.join(ROOT, "README.md"))

    def ins(self, keyword, stage=None):
        return [i for i in (stage or self.final)["instructions"] if i.keyword == keyword]

    def test_lint_is_clean(self):
        self.assertTrue(os.access(LINT, os.X_OK), "dockerfile-utils is missing: "
                        "tools/bootstrap.sh check runs npm ci in tools/deploy")
        p = subprocess.run([LINT, "lint", "--json", DOCKERFILE], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(json.loads(p.stdout or "null"), [], p.stdout + p.stderr)

    def test_lint_finds_problems(self):
        """The linter is not a no-op: a broken copy of the file fails."""
        bad = os.path.join(ROOT, "build", "Dockerfile.bad")
        os.makedirs(os.path.dirname(bad), exist_ok=True)
        with open(bad, "w") as f:
            f.write(read(DOCKERFILE) + "\nHEALTHCHECK CMD true\nCOPY onlyone\n")
        p = subprocess.run([LINT, "lint", "--json", bad], capture_output=True, text=True,
                           timeout=60)
        self.assertGreaterEqual(len(json.loads(p.stdout)), 2, p.stdout)

    def test_multi_stage(self):
        self.assertGreaterEqual(len(self.stages), 2)
        self.assertEqual(self.stages[0]["name"], "build")
        self.assertEqual(self.stages[0]["base"], self.final["base"])   # same Debian
        self.assertTrue(self.final["base"].startswith("debian:12"))
        for word in ("build-essential", "gcc", "make", "-dev"):
            for run in self.ins("RUN"):
                self.assertNotIn(word, dockerfile.apt_packages(run.args))

    def test_every_copy_source_exists(self):
        names = {s["name"] for s in self.stages if s["name"]}
        ignored = read(os.path.join(ROOT, ".dockerignore")).split()
        copies = 0
        for stage in self.stages:
            workdir = "/"
            for ins in stage["instructions"]:
                if ins.keyword == "WORKDIR":
                    workdir = ins.args
                if ins.keyword not in ("COPY", "ADD"):
                    continue
                self.assertEqual(ins.keyword, "COPY", "ADD fetches and unpacks: use COPY")
                copies += 1
                flags, words = ins.flags_and_words()
                for src in words[:-1]:
                    with self.subTest(line=ins.line, src=src):
                        if "from" in flags:
                            # built by make in that stage's WORKDIR (/src)
                            self.assertIn(flags["from"], names)
                            rel = os.path.relpath(src, "/src")
                            p = subprocess.run(["make", "-n", "--no-print-directory", rel],
                                               cwd=ROOT, capture_output=True, text=True)
                            self.assertEqual(p.returncode, 0, "make does not build %s:\n%s"
                                             % (rel, p.stderr))
                        else:
                            self.assertTrue(glob.glob(os.path.join(ROOT, src)),
                                            "%s is not in the repository" % src)
                            self.assertNotIn(src.rstrip("/"), ignored,
                                             "%s is excluded by .dockerignore" % src)
        self.assertGreaterEqual(copies, 3)

    def test_runtime_packages_are_exactly_the_binarys_libraries(self):
        self.assertTrue(os.access(BINARY, os.X_OK), "build bin/cart-service first")
        need = ldd_packages(BINARY)
        installed = []
        for run in self.ins("RUN"):
            installed += dockerfile.apt_packages(run.args)
        self.assertEqual(len(installed), len(set(installed)), "a package twice")
        libs = set(installed) - set(NOT_LIBRARIES)
        self.assertEqual(sorted(libs - set(need)), [], "installed, not needed by ldd")
        self.assertEqual(sorted(set(need) - libs), [], "needed by ldd, not installed: %s"
                         % {p: need[p] for p in set(need) - libs})
        self.assertLessEqual(set(NOT_LIBRARIES), set(installed))

    def test_non_root(self):
        users = self.ins("USER")
        self.assertTrue(users, "no USER: the image would run as root")
        self.assertNotIn(users[-1].args.split(":")[0], ("root", "0"))

    def test_entrypoint_healthcheck_stopsignal_expose_match_readme(self):
        (entry,) = self.ins("ENTRYPOINT")
        self.assertEqual(entry.exec_form(), ENTRYPOINT)
        self.assertEqual(self.ins("CMD"), [], "arguments go to the binary: no CMD")
        copy_dest = [i.flags_and_words()[1][-1] for i in self.ins("COPY")]
        self.assertIn(ENTRYPOINT[0], copy_dest)
        (hc,) = self.ins("HEALTHCHECK")
        self.assertEqual(hc.exec_form(), HEALTHCHECK)
        (sig,) = self.ins("STOPSIGNAL")
        self.assertEqual(sig.args, "SIGTERM")
        (expose,) = self.ins("EXPOSE")
        port = re.search(r"^\| `APP_PORT` \| (\d+) \|", self.readme, re.M).group(1)
        self.assertEqual(expose.args, port)
        env = " ".join(i.args for i in self.ins("ENV"))
        self.assertIn("APP_PORT=%s" % port, env)
        section = self.readme[self.readme.index("### Container image"):]
        section = section[:section.index("\n## ")]
        for text in (" ".join(HEALTHCHECK), "ENTRYPOINT", ENTRYPOINT[0], "EXPOSE %s" % port,
                     "STOPSIGNAL SIGTERM", "10001"):
            self.assertTrue(text in section,
                            "README's Container image section lacks %r" % text)


if __name__ == "__main__":
    unittest.main()
