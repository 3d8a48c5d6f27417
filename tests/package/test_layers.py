"""The package's layering, read from every module's imports (ast), so that the rule keeps holding.

Layers, lowest first: ``common`` < ``data``, ``models`` < ``tflite`` < ``evaluation`` < ``training``; the Python
API (``api``) and the commands (every other top-level module, and the scripts in ``export/`` and ``tools/``) sit
on top. A module may import its own layer and the layers below it, never a command; imports sit at the top of a
module except the optional extras named in OPTIONAL; no import cycle.
"""

import ast
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = os.path.join(REPO, "litedepth_tf")
LIBRARY = ("common", "data", "models", "tflite", "evaluation", "training")
MAY_IMPORT = {
    "common": {"common"},
    "data": {"common", "data"},
    "models": {"common", "models"},
    "tflite": {"common", "data", "models", "tflite"},
    "evaluation": {"common", "data", "models", "tflite", "evaluation"},
    "training": {"common", "data", "models", "evaluation", "training"},
    "api": {"common", "data", "models", "tflite", "evaluation"},
    "command": {"common", "data", "models", "tflite", "evaluation", "training", "api"},
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


def script_modules():
    return {f"{d}/{f}": os.path.join(REPO, d, f) for d in ("export", "tools")
            for f in sorted(os.listdir(os.path.join(REPO, d))) if f.endswith(".py")}


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "litedepth_tf":
        return "root"
    if len(parts) > 2 or parts[1] in LIBRARY:
        return parts[1]
    return "api" if parts[1] == "api" else "command"


def imports(path, known):
    """[(imported litedepth_tf module, line, at module top?)]: `from litedepth_tf.x import y` counts as module
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


def test_every_import_stays_in_its_layer_and_none_is_a_command():
    mods = package_modules()
    bad = []
    for mod, path in {**mods, **script_modules()}.items():
        src_layer = "command" if "/" in mod else layer(mod)
        for name, line, _ in imports(path, mods):
            if not name.startswith("litedepth_tf.") or name == mod:
                continue
            target = name if name in mods else name.rsplit(".", 1)[0]
            dst = layer(target)
            if dst == "command" or dst not in MAY_IMPORT[src_layer]:
                bad.append(f"{os.path.relpath(path, REPO)}:{line}: {src_layer} imports {target} ({dst})")
    assert not bad, "upward or command imports:\n" + "\n".join(bad)


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
