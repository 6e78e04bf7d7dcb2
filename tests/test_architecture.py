"""Imports point one way: cli -> tuning -> pipeline -> {config, trainer, model, _recbole, ...} -> {ops, errors}.

Every import statement of ``recbole_sigma/`` counts, those inside functions too (a cycle hidden in a
function still ties two modules together). The package ``__init__`` is no node: it only re-exports.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = "recbole_sigma"
ROOT = Path(__file__).resolve().parent.parent


def module_names(root):
    """{dotted name: path} of every module under ``root/recbole_sigma`` (a package is its __init__)."""
    names = {}
    for path in sorted((Path(root) / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(name, modules):
    """The most specific module of ``modules`` that ``name`` names (``a.b.C`` -> ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(module, path, modules):
    """The recbole_sigma modules that ``module`` (at ``path``) imports, anywhere in its body."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    is_package = Path(path).name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # from a.b import c: the submodule a.b.c when c is a module, else a.b itself
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or not target.startswith(PACKAGE + "."):
                continue
            resolved = _resolve(target, modules)
            if resolved and resolved != PACKAGE and resolved != module:
                found.add(resolved)
    return found


def import_graph(root=ROOT):
    """{module: set of recbole_sigma modules it imports}, the package __init__ left out."""
    modules = module_names(root)
    return {m: imported_modules(m, p, modules) for m, p in modules.items() if m != PACKAGE}


def find_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state = {}  # module -> 1 on the current path, 2 done
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle():
    # RECBOLE_SIGMA_TREE=<another checkout> runs the check on that tree (e.g. an older main).
    graph = import_graph(os.environ.get("RECBOLE_SIGMA_TREE", ROOT))
    assert PACKAGE + ".pipeline" in graph or "RECBOLE_SIGMA_TREE" in os.environ
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_check_finds_a_cycle(tmp_path):
    """The check is not blind: a cycle hidden inside a function is found and printed."""
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from recbole_sigma.a import f\n")
    (package / "a.py").write_text("from recbole_sigma import b\n\ndef f():\n    return b\n")
    (package / "b.py").write_text("def g():\n    from recbole_sigma.sub.c import h\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("def h():\n    from ..a import f\n")
    graph = import_graph(tmp_path)
    assert graph == {
        "recbole_sigma.a": {"recbole_sigma.b"},
        "recbole_sigma.b": {"recbole_sigma.sub.c"},
        "recbole_sigma.sub": set(),
        "recbole_sigma.sub.c": {"recbole_sigma.a"},
    }
    assert find_cycle(graph) == ["recbole_sigma.a", "recbole_sigma.b", "recbole_sigma.sub.c", "recbole_sigma.a"]
    (package / "sub" / "c.py").write_text("def h():\n    import recbole_sigma\n")  # the package: no node
    assert find_cycle(import_graph(tmp_path)) is None


def test_config_checks_names_the_models_of_recbole_sigma_model():
    """config_checks cannot import recbole_sigma.model (which imports it): it names its models."""
    from recbole_sigma.config_checks import MAMBA_MODELS
    from recbole_sigma.model import MODELS

    assert sorted(MAMBA_MODELS) == sorted(MODELS)


def test_ops_know_nothing_of_recbole():
    """ops/ (the operators) imports neither RecBole nor the package's layers above it."""
    modules = module_names(ROOT)
    for module, path in modules.items():
        if not module.startswith(PACKAGE + ".ops"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level]
        assert not [n for n in names if n.split(".")[0] == "recbole"], module
        assert imported_modules(module, path, modules) <= {m for m in modules if m.startswith(PACKAGE + ".ops")} | {
            PACKAGE + ".errors"}, module


LIGHT_IMPORT = """
import sys
import recbole_sigma
print("AFTER_IMPORT", len(sys.modules), "torch" in sys.modules, "recbole.model.sequential_recommender" in sys.modules)
from recbole_sigma import SIGMA, Mamba4Rec, EchoMamba4Rec, run, load_data_and_model, main  # noqa: F401
print("AFTER_MODELS", "recbole.model.sequential_recommender" in sys.modules)
import recbole_sigma.model
print("SASREC", recbole_sigma.model.SASRec.__name__, list(recbole_sigma.model.BASELINES))
"""


def test_import_is_light():
    """``import recbole_sigma`` loads neither torch nor RecBole's models (a few dozen modules:
    the standard library's, errors and the fixes of _recbole); ours load RecBole's sequential
    models only when RecBole's SASRec is asked for."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", LIGHT_IMPORT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()}
    count, torch_loaded, sequential_loaded = lines["AFTER_IMPORT"]
    assert int(count) < 250  # about 110 on CPython 3.11; torch alone is over 1,000
    assert (torch_loaded, sequential_loaded) == ("False", "False")
    assert lines["AFTER_MODELS"] == ["False"]
    assert lines["SASREC"] == ["SASRec", "['SASRec']"]
