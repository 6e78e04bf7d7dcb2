"""Imports point one way: cli -> tuning -> pipeline -> {config, trainer, model, _recbole, ...} -> {ops, errors}.

Every import statement of ``recbole_sigma/`` counts, those inside functions too (a cycle hidden in a
function still ties two modules together). The package ``__init__`` is no node: it only re-exports.
"""
import ast
import os
import re
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


# --------------------------------------------------------------------------------------------------
# Small functions: none in recbole_sigma/ over MAX_FUNCTION_LINES
# --------------------------------------------------------------------------------------------------
MAX_FUNCTION_LINES = 60


def long_functions(root=ROOT, limit=MAX_FUNCTION_LINES):
    """['path:line name (n lines)'] of every function or method under ``root/recbole_sigma``, nested
    ones too, longer than ``limit`` lines from its ``def`` line to its last line."""
    found = []
    for path in sorted((Path(root) / PACKAGE).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in sorted(functions, key=lambda n: n.lineno):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_60_lines():
    offenders = long_functions()
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines: " + "; ".join(offenders)


def test_the_length_check_counts_methods_and_nested_functions(tmp_path):
    """The check is not blind: a long method and a long function nested in a short one are found,
    counted from the def line (decorators aside) to the last line; 60 lines pass."""
    package = tmp_path / PACKAGE / "sub"
    package.mkdir(parents=True)
    body = "".join(f"    x{i} = {i}\n" for i in range(59))  # def line + 59 = 60 lines
    (tmp_path / PACKAGE / "ok.py").write_text("@decorator\n@another\ndef fits():\n" + body)
    (package / "m.py").write_text(
        "class C:\n    def method(self):\n" + body.replace("    ", "        ") + "        return 1\n\n"
        "def outer():\n    def inner():\n" + body.replace("    ", "        ") + "        return 2\n"
        "    return inner\n"
    )
    assert long_functions(tmp_path) == [
        f"{Path(PACKAGE, 'sub', 'm.py')}:2 method (61 lines)",
        f"{Path(PACKAGE, 'sub', 'm.py')}:64 outer (63 lines)",
        f"{Path(PACKAGE, 'sub', 'm.py')}:65 inner (61 lines)",
    ]


# --------------------------------------------------------------------------------------------------
# README's layout table matches the tree
# --------------------------------------------------------------------------------------------------
# The repository's top-level entries when it is not a git checkout (an sdist): what git tracks.
TOP_LEVEL = ("recbole_sigma/", "properties/", "run_recbole_sigma.py", "hyper.test", "dataset/", "tests/",
             "setup.py", "README.md", "benchmarks/", "docs/")


def layout_paths(readme):
    """The paths named (in backticks) in the first cell of each row of README's layout table: the
    ``| path | ...`` table under the ``## Layout`` heading."""
    lines = Path(readme).read_text(encoding="utf-8").splitlines()
    start = lines.index("## Layout")
    paths = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells or cells[0] == "path" or set(cells[0]) <= set("-: "):
            continue
        paths += re.findall(r"`([^`]+)`", cells[0])
    return paths


def top_level_entries(root=ROOT):
    """The repository's top-level files and folders (``name/``) that git tracks, dot-files aside."""
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        return set(TOP_LEVEL)
    names = {path.split("/")[0] + ("/" if "/" in path else "") for path in listed.splitlines()}
    return {name for name in names if not name.startswith(".")}


def package_entries(root=ROOT):
    """``recbole_sigma/``'s modules and subpackages, as ``recbole_sigma/x.py`` and ``recbole_sigma/sub/``."""
    found = set()
    for entry in (Path(root) / PACKAGE).iterdir():
        if entry.name.startswith((".", "__pycache__")):
            continue
        if entry.suffix == ".py" or (entry.is_dir() and (entry / "__init__.py").exists()):
            found.add(f"{PACKAGE}/{entry.name}" + ("/" if entry.is_dir() else ""))
    return found


def layout_problems(root=ROOT, top_level=None):
    """What README's layout table gets wrong: paths that do not exist, entries it does not name
    (``top_level``: the repository's top-level entries, by default :func:`top_level_entries`)."""
    root = Path(root)
    named = layout_paths(root / "README.md")
    problems = [f"{p} does not exist" for p in named
                if not (root / p).exists() or (p.endswith("/") and not (root / p).is_dir())]
    for entry in sorted(package_entries(root)):
        if entry not in named:
            problems.append(f"{entry} is not in the table")
    for entry in sorted(top_level_entries(root) if top_level is None else top_level):
        if not any(p == entry or p.startswith(entry) for p in named):
            problems.append(f"{entry} is not in the table")
    return problems


def test_readme_layout_table_matches_the_tree():
    problems = layout_problems()
    assert not problems, "README.md's layout table: " + "; ".join(problems)


def test_the_layout_check_finds_a_missing_and_a_stale_row(tmp_path):
    (tmp_path / PACKAGE / "model").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "b.py", "model/__init__.py"):
        (tmp_path / PACKAGE / name).write_text("")
    (tmp_path / "README.md").write_text(
        "# x\n\n## Layout\n\n| path | what |\n| --- | --- |\n"
        "| `recbole_sigma/__init__.py`, `recbole_sigma/a.py` | a |\n| `recbole_sigma/gone.py` | gone |\n"
        "| `recbole_sigma/model/` | models |\n\n## Next\n\n| `recbole_sigma/b.py` | not the layout table |\n"
    )
    assert layout_paths(tmp_path / "README.md") == [
        "recbole_sigma/__init__.py", "recbole_sigma/a.py", "recbole_sigma/gone.py", "recbole_sigma/model/"]
    (tmp_path / "setup.py").write_text("")
    assert layout_problems(tmp_path, top_level={"recbole_sigma/", "setup.py"}) == [
        "recbole_sigma/gone.py does not exist", "recbole_sigma/b.py is not in the table", "setup.py is not in the table"]


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


# ------------------------------------------------------------------------------------------------
# Every key of our YAML defaults documented once, on its own line
# ------------------------------------------------------------------------------------------------
def undocumented_keys(path):
    """Top-level keys of a YAML file whose line carries no ``#`` comment (a nested key is covered by its
    parent's)."""
    return [line.split(":")[0] for line in Path(path).read_text().splitlines()
            if re.match(r"^[A-Za-z_]\w*:", line) and not re.search(r"\s#", line)]


def test_every_yaml_default_key_is_documented():
    files = sorted((ROOT / "properties").rglob("*.yaml"))
    assert len(files) >= 5
    missing = {f.relative_to(ROOT).as_posix(): keys for f in files if (keys := undocumented_keys(f))}
    assert not missing, f"keys without a comment: {missing}"


def test_the_documentation_check_finds_a_bare_key(tmp_path):
    yaml_file = tmp_path / "m.yaml"
    yaml_file.write_text("# header\na: 1   # documented\nb: 2\nc:\n  nested: 3\nd: '#'\n")
    assert undocumented_keys(yaml_file) == ["b", "c", "d"]  # a '#' inside a value is no comment
