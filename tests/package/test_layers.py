"""The package's layering, read from every module's imports (ast), so that the rule keeps holding.

Layers, lowest first: ``common`` < ``data``, ``models`` < ``tflite`` < ``evaluation`` < ``training``, and
``inference`` above ``tflite`` beside the last two (running a trained model on files needs neither evaluation nor
training, and they do not need it); the Python API (``api``) and the commands (every other top-level module, and
the scripts in ``export/`` and ``tools/``) sit on top. A module may import its own layer and the layers below it,
never a command (neither a top-level command module nor another script); imports sit at the top of a module
except the optional extras named in OPTIONAL; no import cycle.
"""

import ast
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = os.path.join(REPO, "litedepth_tf")
SCRIPT_DIRS = ("export", "tools")
LIBRARY = ("common", "data", "models", "tflite", "inference", "evaluation", "training")
MAY_IMPORT = {
    "common": {"common"},
    "data": {"common", "data"},
    "models": {"common", "models"},
    "tflite": {"common", "data", "models", "tflite"},
    "inference": {"common", "data", "models", "tflite", "inference"},
    "evaluation": {"common", "data", "models", "tflite", "evaluation"},
    "training": {"common", "data", "models", "evaluation", "training"},
    "api": {"common", "data", "models", "tflite", "inference", "evaluation"},
    "command": {"common", "data", "models", "tflite", "inference", "evaluation", "training", "api"},
    "root": {"api"},
}
# Imported inside functions on purpose: optional extras (video, figures, torch) anywhere; and in two modules,
# what a .tflite user must not pay for: `import litedepth_tf` stays light, and the API runs a .tflite without
# TensorFlow (it is imported only when Keras weights are loaded).
OPTIONAL = {"matplotlib", "imageio", "imageio_ffmpeg", "skimage", "torch"}
LAZY = {"litedepth_tf/__init__.py": {"litedepth_tf.api"},
        "litedepth_tf/api.py": {"tensorflow", "keras", "litedepth_tf.models"}}


def package_modules():
    mods = {}
    for folder, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                mods[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return mods


def script_modules(repo=REPO):
    return {f"{d}/{f}": os.path.join(repo, d, f) for d in SCRIPT_DIRS
            for f in sorted(os.listdir(os.path.join(repo, d))) if f.endswith(".py")}


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "litedepth_tf":
        return "root"
    if len(parts) > 2 or parts[1] in LIBRARY:
        return parts[1]
    return "api" if parts[1] == "api" else "command"


def imports(path, known):
    """[(imported module, line, at module top?)]: `from litedepth_tf.x import y` counts as module
    litedepth_tf.x.y when that is a module, else litedepth_tf.x."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        for name in names:
            out.append((name, node.lineno, id(node) in top))
    return out


def layer_violations(files, known, repo=REPO) -> list:
    """Every import of `files` (package module or ``export/``, ``tools/`` script -> path; `known`: the package's
    modules) that goes to a higher layer or to a command: a top-level command module, or a script (``import
    export_tflite``, ``from export import benchmark``), as "file:line: what"."""
    stems = {os.path.basename(k)[:-3] for k in files if "/" in k}
    bad = []
    for mod, path in files.items():
        src_layer = "command" if "/" in mod else layer(mod)
        for name, line, _ in imports(path, known):
            where = f"{os.path.relpath(path, repo)}:{line}"
            top = name.split(".")[0]
            if top in SCRIPT_DIRS or (top in stems and not name.startswith("litedepth_tf")):
                bad.append(f"{where}: {src_layer} imports the script {name} (a command)")
                continue
            if not name.startswith("litedepth_tf.") or name == mod:
                continue
            target = name if name in known else name.rsplit(".", 1)[0]
            dst = layer(target)
            if dst == "command" or dst not in MAY_IMPORT[src_layer]:
                bad.append(f"{where}: {src_layer} imports {target} ({dst})")
    return bad


def test_every_import_stays_in_its_layer_and_none_is_a_command():
    mods = package_modules()
    bad = layer_violations({**mods, **script_modules()}, mods)
    assert not bad, "upward or command imports:\n" + "\n".join(bad)


def test_a_command_importing_a_command_is_caught(tmp_path):
    """The check itself: a script importing a command module or another script, and a library module importing a
    command or a higher layer, are each reported (a checker that reports nothing would pass the test above)."""
    mods = package_modules()
    for d in SCRIPT_DIRS:
        (tmp_path / d).mkdir()
    (tmp_path / "export" / "a.py").write_text("from litedepth_tf import predict\nimport litedepth_tf.evaluate\n"
                                              "from export import b\nimport b\n")
    (tmp_path / "export" / "b.py").write_text("from litedepth_tf.inference.predictor import Predictor\n")
    lib = tmp_path / "lib.py"
    lib.write_text("from litedepth_tf.api import load\nfrom litedepth_tf import train\n")
    bad = layer_violations({"litedepth_tf.inference.fake": str(lib), **script_modules(str(tmp_path))}, mods,
                           str(tmp_path))
    assert bad == ["lib.py:1: inference imports litedepth_tf.api (api)",
                   "lib.py:2: inference imports litedepth_tf.train (command)",
                   "export/a.py:1: command imports litedepth_tf.predict (command)",
                   "export/a.py:2: command imports litedepth_tf.evaluate (command)",
                   "export/a.py:3: command imports the script export (a command)",
                   "export/a.py:4: command imports the script b (a command)"], bad


def test_imports_sit_at_the_top_except_optional_extras():
    mods = package_modules()
    late = []
    for mod, path in {**mods, **script_modules()}.items():
        allowed = OPTIONAL | LAZY.get(os.path.relpath(path, REPO).replace(os.sep, "/"), set())
        for name, line, at_top in imports(path, mods):
            if not at_top and not any(name == o or name.startswith(o + ".") for o in allowed):
                late.append(f"{os.path.relpath(path, REPO)}:{line}: import {name} inside a function")
    assert not late, "\n".join(late)


def test_no_import_cycle():
    mods = package_modules()
    graph = {m: {n if n in mods else n.rsplit(".", 1)[0] for n, _, _ in imports(p, mods)
                 if n.startswith("litedepth_tf.")} - {m} for m, p in mods.items()}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(graph.get(m, ())):
            if n not in mods:
                continue
            if state.get(n) == "open":
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(mods):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_no_module_shadows_the_standard_library():
    clash = [m for m in package_modules() if m.rsplit(".", 1)[-1] in sys.stdlib_module_names]
    assert not clash, clash
