"""The package's import structure: no cycles between modules, private names stay private.

Walks every module of ``ember/`` with :mod:`ast` (nothing is imported), builds the
graph of module-level imports and checks two rules:

* no import cycle between modules (imports inside functions count too, except the
  few justified ones on :data:`LAZY_IMPORT_ALLOWED`, which run only on first use);
* no module imports an underscore name from another module, except the few on
  :data:`PRIVATE_IMPORT_ALLOWED`, each with its reason.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ember"

#: (importing module, imported module, name): cross-module imports of underscore
#: names that are allowed, each with the reason.
PRIVATE_IMPORT_ALLOWED = {
    # torch keeps its distribution registry private; ember registers its wrappers there
    # so that torch's own KL dispatch finds them.
}


def module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(modules, name):
    return modules[name].name == "__init__.py"


def resolve(modules, current, node):
    """The absolute module an ``ImportFrom`` node names."""
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package(modules, current):
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def top_level_imports(tree):
    """Import nodes run at import time: module level, ``if``/``try`` blocks, not functions."""
    out = []

    def visit(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                out.append(node)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))
            elif isinstance(node, ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    return out


def all_imports(tree):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def import_edges(modules):
    """``{module: {imported ember module, ...}}`` for imports run at import time."""
    edges = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = set()
        top = {id(n) for n in top_level_imports(tree)}
        for node in all_imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "ember":
                        if id(node) in top or (name, alias.name) not in LAZY_IMPORT_ALLOWED:
                            targets.add(alias.name)
            else:
                base = resolve(modules, name, node)
                if id(node) not in top and (name, base) in LAZY_IMPORT_ALLOWED:
                    continue
                if base.split(".")[0] != "ember":
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        # Importing ``a.b.c`` runs ``a`` and ``a.b`` first; a submodule's own parent
        # packages are already being imported when it runs, so they add no edge.
        closed = set()
        for t in targets:
            if t not in modules:
                continue
            closed.add(t)
            # importing a submodule runs its parent packages first (the root ``ember``
            # is where every import starts, so it adds no edge)
            parts = t.split(".")
            for i in range(2, len(parts)):
                closed.add(".".join(parts[:i]))
        closed.discard(name)
        edges[name] = {t for t in closed if not name.startswith(t + ".")}
    return edges


def find_cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for v in sorted(edges):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def private_imports(modules):
    """``(importer, imported module, name)`` for every cross-module underscore import."""
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in all_imports(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = resolve(modules, name, node)
            for alias in node.names:
                n = alias.name
                if n.startswith("_") and not n.startswith("__"):
                    if base != name:
                        found.append((name, base, n))
    return found


def private_attribute_reads(modules):
    """``module._name`` attribute reads through an imported ember module object."""
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        aliases = {}
        for node in all_imports(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("ember"):
                        aliases[a.asname or a.name.split(".")[0]] = a.name
            elif isinstance(node, ast.ImportFrom):
                base = resolve(modules, name, node)
                for a in node.names:
                    full = f"{base}.{a.name}"
                    if full in modules:
                        aliases[a.asname or a.name] = full
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append((name, aliases[node.value.id], node.attr))
    return found


def test_no_import_cycles():
    modules = all_modules()
    cycles = find_cycles(import_edges(modules))
    assert not cycles, "import cycles between ember modules:\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_private_names_stay_private():
    modules = all_modules()
    bad = [
        f"{a} imports {n!r} from {b}"
        for a, b, n in private_imports(modules) + private_attribute_reads(modules)
        if (a, b, n) not in PRIVATE_IMPORT_ALLOWED
    ]
    assert not bad, "private names used across modules:\n" + "\n".join(sorted(set(bad)))


#: (importing module, imported module): imports of ember modules inside functions,
#: each with its reason. Anything else is imported at module level, where the layer
#: order (see README, "Architecture") says it may be.
LAZY_IMPORT_ALLOWED = {
    # the command line loads the demo (and its data) only when asked to run it
    ("ember.__main__", "ember.demo"),
    # PEP 562: ember.nn sits below the primitives but exports PyroModule & co. on first use
    ("ember.nn", "ember.nn.module"),
    # PEP 562: ember.util (the bottom layer) forwards Pyro's pyro.util trace checks to
    # their homes in the inference layer on first use
    ("ember.util", "ember.infer.traceenum_elbo"),
    ("ember.util", "ember.infer.util"),
}


def lazy_imports(modules):
    """``(importer, imported module)`` for ember imports made inside functions."""
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        top = {id(n) for n in top_level_imports(tree)}
        for node in all_imports(tree):
            if id(node) in top:
                continue
            if isinstance(node, ast.ImportFrom):
                target = resolve(modules, name, node)
            else:
                target = node.names[0].name
            if target.split(".")[0] == "ember":
                found.append((name, target))
    return found


def test_no_lazy_imports_of_ember_modules():
    modules = all_modules()
    bad = sorted(
        {f"{a} imports {b} inside a function" for a, b in lazy_imports(modules)}
        - {f"{a} imports {b} inside a function" for a, b in LAZY_IMPORT_ALLOWED}
    )
    assert not bad, "lazy imports hide the layer order:\n" + "\n".join(bad)


#: The layers, bottom first: a module may import modules of its own layer and of
#: the layers below it, never above. Longest prefix wins.
LAYERS = [
    ("ember.settings", 0),
    ("ember.util", 0),
    ("ember.logger", 0),
    ("ember.ops", 1),
    ("ember.nn.auto_reg_nn", 1),
    ("ember.distributions", 2),
    ("ember.params", 3),
    ("ember.poutine", 4),
    ("ember.primitives", 5),
    ("ember.nn", 1),  # the package itself exports nn.module's names lazily (PEP 562)
    ("ember.nn.module", 6),
    ("ember.optim", 6),
    ("ember.infer", 7),
    ("ember.contrib", 7),
    ("ember.demo", 8),
    ("ember.__main__", 9),
    ("ember", 9),
]


def layer_of(module):
    best = None
    for prefix, rank in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, rank)
    return best[1]


def test_layers_import_only_downwards():
    modules = all_modules()
    edges = import_edges(modules)
    bad = sorted(
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, targets in edges.items()
        for b in targets
        if layer_of(b) > layer_of(a)
    )
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_checker_finds_a_cycle_and_a_private_import(tmp_path):
    """The checker itself: a two-module cycle and a private import are reported."""
    edges = {"ember.a": {"ember.b"}, "ember.b": {"ember.a"}, "ember.c": {"ember.a"}}
    assert find_cycles(edges) == [["ember.a", "ember.b"]]
    assert find_cycles({"ember.a": {"ember.b"}, "ember.b": set()}) == []
