"""One command pattern (litedepth_tf/common/cli.py), read from the source (ast): every command module of the
package and every script in export/ and tools/ defines ``define_flags(fv)`` and ``main(argv, fv)`` and ends with
``entry_point = cli.command(main, define_flags)``, with no module-level ``FLAGS``; every package command is a
console script of pyproject.toml; a command holds flags, the call and the printing, so it stays short."""

import ast
import os
import tomllib

from tests.package.test_layers import REPO, package_modules, layer, script_modules

MAX_LINES = 150
# train.py is slimmed by the loop work of issue 27 (Trainer.fit as named steps, no forwarding wrappers).
LONG_FOR_NOW = {"litedepth_tf/train.py"}


def command_files() -> dict:
    """{repo-relative path: path} of every command: the package's top-level command modules and the scripts."""
    mods = {os.path.relpath(p, REPO): p for m, p in package_modules().items() if layer(m) == "command"}
    return {**mods, **script_modules()}


def _pattern_problems(path) -> list:
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    problems = []
    for name, args in (("define_flags", ["fv"]), ("main", ["argv", "fv"])):
        f = funcs.get(name)
        if f is None:
            problems.append(f"no {name}()")
        elif len(f.args.args) != len(args):
            problems.append(f"{name} takes {[a.arg for a in f.args.args]}, not {args}")
    assigns = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
               if isinstance(t, ast.Name)}
    entry = assigns.get("entry_point")
    if not (isinstance(entry, ast.Call) and ast.unparse(entry) == "cli.command(main, define_flags)"):
        problems.append("no `entry_point = cli.command(main, define_flags)`")
    if "FLAGS" in assigns:
        problems.append("a module-level FLAGS (flags go on the FlagValues given to define_flags)")
    return problems


def test_every_command_follows_the_one_pattern():
    bad = {rel: p for rel, path in command_files().items() if (p := _pattern_problems(path))}
    assert not bad, bad


def test_the_pattern_check_catches_the_old_spellings(tmp_path):
    old = tmp_path / "old.py"
    old.write_text("from absl import flags\nfrom litedepth_tf.common import cli\nFLAGS = flags.FLAGS\n"
                   "def main(argv):\n    return 0\ndef entry_point():\n    cli.run(main)\n")
    assert _pattern_problems(old) == ["no define_flags()", "main takes ['argv'], not ['argv', 'fv']",
                                      "no `entry_point = cli.command(main, define_flags)`",
                                      "a module-level FLAGS (flags go on the FlagValues given to define_flags)"]


def test_every_package_command_is_a_console_script():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    targets = set(scripts.values())
    want = {f"{os.path.splitext(rel)[0].replace(os.sep, '.')}:entry_point" for rel in command_files()
            if rel.startswith("litedepth_tf")}
    assert want - targets == set() and targets - want == set(), (want - targets, targets - want)
    assert all(name.startswith("litedepth-") and "_" not in name for name in scripts), scripts


def test_commands_are_short():
    long = {rel: n for rel, path in command_files().items()
            if (n := sum(1 for _ in open(path, encoding="utf-8"))) > MAX_LINES and rel not in LONG_FOR_NOW}
    assert not long, f"command modules over {MAX_LINES} lines (move the library code into the package): {long}"
