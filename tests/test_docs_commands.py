"""Every command the docs show runs, on a small slice, in the environment the README's install makes.

What is collected. ``README.md``, ``docs/*.md`` and ``docs/results/*.md`` are read; every shell
command that runs this project -- ``python run_recbole_sigma.py ...``, ``python -m recbole_sigma...``,
``python benchmarks/...``, ``recbole-sigma ...`` -- is taken from code blocks (fenced or indented),
and from inline code spans too, except in the reports ``benchmarks/reproduce.py`` writes (their
``command:`` lines record past runs on other machines). Backslash continuations are joined, ``&&``
and ``;`` split a line, and ``nohup``, a trailing ``&``, ``# comments`` and redirections are dropped:
the test runs the command in the foreground and reads its output itself. The commands of issue 16's
"done when" (``--model=X --dataset=ml-100k --epochs=1`` for our three models and RecBole's four
baselines) are added.

How each runs (``plan``): as written, in the docs' order, in one scratch folder with the repository's
``run_recbole_sigma.py``, ``hyper.test`` and ``benchmarks/`` linked in (so ``saved/``, ``log/`` and
``runs/`` land there, a checkpoint the docs made earlier is there for ``--resume`` and
``grouped_eval``), with a small-data suffix appended (the last value of an option wins):

* training (``run_recbole_sigma.py``): ``TRAIN_SUFFIX`` -- one epoch, users with 20-24
  interactions (ml-100k keeps 122 users and 536 items), sequences cut to 10; a search adds
  ``--max_evals=1`` / ``--num_samples=1``. Asserted: exit 0 and the printed best-valid and test
  HR/NDCG/MRR@10 as plain numbers (a search: its best parameters and test result).
* ``benchmarks/reproduce.py``: ``HARNESS_SUFFIX`` (the same slice through ``--set``, one seed, the
  runs and the report in the scratch folder). The Table 2 command that names all seven models
  trains RecBole's GRU4Rec, BERT4Rec and FEARec (``HARNESS_MODELS``: Mamba4Rec and SASRec already
  run through the harness in tests/test_reproduce.py); the others run with ``--dry-run``, which
  still checks every model and variant they name (``harness_dry_run``). Asserted: the report's
  table and figure, or the plan.
* ``benchmarks/speed.py`` / ``scan_micro.py``: one model or our fused kernel, tiny batches
  (``BENCH_SUFFIX``), one ``speed.py`` run per mode (dataset, ``--synthetic``); their table.
* ``python -m recbole_sigma.grouped_eval``: as written (``--plot`` must write a PNG).
* ``python -m recbole_sigma.gpu_check``: with ``--quick`` (on a CPU the full size takes minutes and
  measures nothing new); both report files.
* A command whose cut-down run is one already made is skipped, naming it. Anything in ``NOT_RUN``
  is skipped with its reason (a Ray cluster, a placeholder, the same Ray search on another params
  file); a command of an unknown kind fails until it gets a plan in ``plan`` or a reason.

Data. ``ml-100k`` ships inside RecBole (which ignores ``data_path`` for it). Amazon Beauty is not in
CI, so a tiny Beauty-shaped ``amazon-beauty.inter`` (60 users x 20-24 items, each item >= 5 times,
so that its YAML's 5-core filter keeps it all) is written to ``<scratch>/shared/datasets`` -- which
the docs' ``../shared/datasets`` reaches from the scratch folder ``<scratch>/work`` -- and to the
default ``dataset/`` there; the docs' ``/work/shared/datasets`` is pointed at it.

The environment. CI installs ``.[test]``; a user runs the README's install (``-e .``, no extra). So
that a module only an extra brings (pytest, hyperopt, ...) cannot hide a missing dependency, each
command runs with a ``sitecustomize`` on ``PYTHONPATH`` (inherited by every child process: the
harness's jobs, the benchmarks' workers) that hides from the site-packages finders every top-level
module of an installed distribution outside the dependency closure of setup.py's ``install_requires`` (read with
``ast``, expanded with ``importlib.metadata``; pip/setuptools/wheel count as the venv's own). A
search (``--params_file``) is documented to need ``pip install -e ".[tune]"``, so its closure adds
the ``tune`` extra. A hook rather than
a second venv: a fresh venv costs a torch download per CI run; the hook costs nothing and fails the
same way (``ModuleNotFoundError``). ``test_the_import_blocker_refuses_extras_and_allows_the_install``
shows it works.

Runtime: 7 minutes wall, 4.3 minutes of CPU, measured once on 2 cores shared with other jobs (load
about 5); on 2 idle cores about 4 minutes. The largest parts: the harness's three jobs (~60 s), the
hyperopt and Ray searches (~70 s), the first SIGMA run (which compiles the numba kernels once).
"""
import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = re.compile(r"^(python (run_recbole_sigma\.py|-m recbole_sigma\b|benchmarks/)|recbole-sigma\s)")
REPORT_NAME = re.compile(r"^(?!README\.md$)(?!.*\.reading\.md$).*\.md$")  # docs/results/ files the harness writes

# One epoch on a slice: users with 20-24 interactions, sequences cut to 10.
SLICE = {"epochs": "1", "user_inter_num_interval": "[20,25)", "MAX_ITEM_LIST_LENGTH": "10",
         "show_progress": "False"}
TRAIN_SUFFIX = [f"--{k}={v}" for k, v in SLICE.items()]
SEARCH_SUFFIX = {"hyperopt": ["--max_evals=1"], "ray": ["--num_samples=1"]}  # one trial: the search path end to end
HARNESS_SUFFIX = ["--seeds", "2020", "--set", *(f"{k}={v}" for k, v in SLICE.items())]
BENCH_SUFFIX = {
    # SIGMA, and Mamba4Rec for its dropout 'auto' (read off the data, or the synthetic mode's fake sizes);
    # tiny batches, one timed batch or step; one run per mode (dataset / --synthetic), see plan()
    "speed.py": ["--models", "SIGMA", "Mamba4Rec", "--batch=64", "--eval_batch=64", "--max_batches=1",
                 "--n_items=200", "--steps=1"],
    # our fused kernel alone (the reference and the fallback are PyTorch, timed by tests elsewhere), tiny sizes
    "scan_micro.py": ["--methods", "fused", "--batch=8", "--lengths", "16", "--repeat=1"],
}

NOT_RUN = {
    "python run_recbole_sigma.py --model=SIGMA --dataset=ml-100k --params_file=hyper.test --tool=ray "
    "--ray_address=auto":
        "needs a running Ray cluster; tests/test_tuning.py::test_ray_search_of_a_recbole_model_on_a_running_cluster "
        "starts one (`ray start --head` on a free port) and searches on it",
    "python run_recbole_sigma.py --model=SASRec --dataset=ml-100k --params_file=my_sasrec.test --tool=ray":
        "the local Ray search of the `--tool=ray --num_samples=20` command (which runs here) with the user's own "
        "params file; tests/test_tuning.py searches RecBole's SASRec through Ray (on a cluster), and SASRec trains "
        "here through the command line",
}
# The harness trains (one seed, the slice) the command that names all seven models of DONE_WHEN (Table 2), cut
# to RecBole's baselines that tests/test_reproduce.py's tiny harness run (Mamba4Rec, SASRec) does not train;
# the others run with --dry-run, which still checks every model and variant they name: their models are
# among those seven, their variants are config overrides of the SIGMA job (unit-tested in test_reproduce.py).
HARNESS_MODELS = ["GRU4Rec", "BERT4Rec", "FEARec"]


def harness_dry_run(words):
    models = set(words[words.index("--models") + 1:]) if "--models" in words else set()
    return "--variants" in words or not {shlex.split(c)[2].partition("=")[2] for c in DONE_WHEN} <= models
# Issue 16, "done when": every model through the command line.
DONE_WHEN = [f"python run_recbole_sigma.py --model={m} --dataset=ml-100k --epochs=1"
             for m in ("SASRec", "GRU4Rec", "BERT4Rec", "FEARec", "Mamba4Rec", "SIGMA", "EchoMamba4Rec")]
# A run that makes a file a later command reads, for a command selected on its own (-k).
MAKES = {"saved/SIGMA-amazon-beauty-best.pth":
         "python run_recbole_sigma.py --model=SIGMA --dataset=amazon-beauty --data_path=../shared/datasets"}


# --------------------------------------------------------------------------------------------
# Reading the docs
# --------------------------------------------------------------------------------------------
def doc_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs/results").glob("*.md"))]


def is_report(path):
    return path.parent == ROOT / "docs/results" and REPORT_NAME.match(path.name) is not None


def shell_commands(text, inline=True):
    """[(line number, command)] of every command in ``text``'s code blocks (and inline code spans)."""
    found, fenced, lines = [], False, text.splitlines()
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        if line.lstrip().startswith("```"):
            fenced = not fenced
            i += 1
            continue
        if fenced or line.startswith("    "):
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            found += [(number, part) for part in re.split(r"\s*(?:&&|;)\s*", line.strip())]
        elif inline:
            found += [(number, span) for span in re.findall(r"`([^`]+)`", line)]
        i += 1
    commands = []
    for number, part in found:
        command = normalise(part)
        if command and PROJECT.match(command):
            commands.append((number, command))
    return commands


def normalise(part):
    """The command without nohup, a trailing &, a comment or redirections, re-quoted; '' if not shell."""
    try:
        words = shlex.split(part, comments=True)
    except ValueError:
        return ""
    if words[:1] == ["nohup"]:
        words = words[1:]
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "&" or re.fullmatch(r"\d?>&\d", word):
            continue
        elif re.fullmatch(r"\d?>>?", word):
            skip = True  # '> file': the file is the next word
        elif re.match(r"\d?>>?\S", word):
            continue
        else:
            kept.append(word)
    return shlex.join(kept)


def documented():
    """[(id, command)] in the docs' order, then the "done when" commands the docs do not show."""
    seen, out = set(), []
    for path in doc_files():
        for number, command in shell_commands(path.read_text(encoding="utf-8"), inline=not is_report(path)):
            if command not in seen:
                seen.add(command)
                out.append((f"{path.relative_to(ROOT)}:{number}", command))
    def as_run(command):  # the run a training command makes, the user's config files aside
        return frozenset(w for w in shlex.split(command) + TRAIN_SUFFIX if not w.startswith("--config_files="))

    runs = {as_run(c) for c in seen}
    for command in DONE_WHEN:
        if as_run(command) not in runs:
            out.append((f"issue16:{command.split()[2].partition('=')[2]}", command))
    return out


COMMANDS = documented()


# --------------------------------------------------------------------------------------------
# The README's environment
# --------------------------------------------------------------------------------------------
def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def setup_requirements():
    """setup.py's install_requires and extras_require, read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    keywords = {k.arg: k.value for k in call.keywords}
    return ast.literal_eval(keywords["install_requires"]), ast.literal_eval(keywords["extras_require"])


def dependency_closure(requirements):
    """Normalised names of the installed distributions ``requirements`` pull in, with their extras."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    extras_seen, todo = {}, [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        new = ({""} | set(req.extras)) - extras_seen.get(name, set())
        if not new:
            continue
        extras_seen.setdefault(name, set()).update(new)
        try:
            requires = md.distribution(req.name).requires or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            dep = Requirement(text)
            if dep.marker is None or any(dep.marker.evaluate({"extra": extra}) for extra in new):
                todo.append(dep)
    return set(extras_seen)


def blocked_modules(extras=()):
    """Top-level modules of installed distributions the README's install (plus ``extras``) would not bring."""
    import importlib.metadata as md

    install, extra_requires = setup_requirements()
    allowed = dependency_closure(install + [r for e in extras for r in extra_requires[e]])
    # recbole: the README's first command installs it alone (--no-deps; see setup.py)
    allowed |= {"recbole-sigma", "recbole", "pip", "setuptools", "wheel"}
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    return sorted(module for module, dists in md.packages_distributions().items()
                  if module not in stdlib and not any(_norm(d) in allowed for d in dists))


BLOCKER = '''\
"""Test-only (tests/test_docs_commands.py): modules the README's install would not bring look not installed.

Each site-packages entry's finder is wrapped so that it does not see them: an import fails with
ModuleNotFoundError and ``importlib.util.find_spec`` returns None, as in a venv without them (torch,
for one, probes optional modules with find_spec)."""
import os
import sys

_BLOCKED = frozenset(filter(None, os.environ.get("DOCS_TEST_BLOCKED", "").split(",")))


class _Without:
    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, target=None):
        if name.partition(".")[0] in _BLOCKED:
            return None
        return self._finder.find_spec(name, target)

    def __getattr__(self, attr):  # invalidate_caches, iter_modules, ...
        return getattr(self._finder, attr)


def _finder(entry):
    for hook in sys.path_hooks:
        try:
            return hook(entry)
        except ImportError:
            pass
    return None


for _entry in sys.path:
    if os.path.basename(_entry) in ("site-packages", "dist-packages") and os.path.isdir(_entry):
        _found = sys.path_importer_cache.get(_entry) or _finder(_entry)
        if _found is not None and not isinstance(_found, _Without):
            sys.path_importer_cache[_entry] = _Without(_found)
'''


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    if sys.version_info < (3, 10):
        pytest.skip("packages_distributions() needs Python 3.10+")
    base = tmp_path_factory.mktemp("docs")
    (base / "hook").mkdir()
    (base / "hook" / "sitecustomize.py").write_text(BLOCKER)
    work = base / "work"
    work.mkdir()
    for name in ("run_recbole_sigma.py", "hyper.test", "benchmarks"):
        (work / name).symlink_to(ROOT / name)
    datasets = base / "shared" / "datasets"
    write_tiny_beauty(datasets / "amazon-beauty")
    (work / "dataset").symlink_to(datasets)
    # the user's files of the README's --config_files example
    (work / "a.yaml").write_text("stopping_step: 10\n")
    (work / "b.yaml").write_text("eval_batch_size: 4096\n")
    (work / "my_sasrec.test").write_text("hidden_dropout_prob choice [0.2,0.5]\n")  # docs/tuning.md's SASRec search
    return {"work": work, "hook": base / "hook", "datasets": datasets,
            "blocked": {(): blocked_modules(), ("tune",): blocked_modules(["tune"])}, "ran": {}}


def write_tiny_beauty(folder):
    """60 users with 20-24 interactions each over 80 items, each item >= 5 times (a 5-core)."""
    folder.mkdir(parents=True)
    rows, item = ["user_id:token\titem_id:token\ttimestamp:float"], 0
    for user in range(1, 61):
        for step in range(20 + user % 5):
            rows.append(f"{user}\t{item % 80 + 1}\t{1_300_000_000 + 86_400 * step + user}")
            item += 7
    (folder / "amazon-beauty.inter").write_text("\n".join(rows) + "\n")


def run_command(argv, ws, extras=(), timeout=900):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ws["hook"]), str(ROOT)]),
               DOCS_TEST_BLOCKED=",".join(ws["blocked"][tuple(extras)]), PYTHONUNBUFFERED="1")
    proc = subprocess.run(argv, cwd=ws["work"], env=env, capture_output=True, text=True, timeout=timeout)
    return proc


# --------------------------------------------------------------------------------------------
# What each command runs as
# --------------------------------------------------------------------------------------------
def plan(command, ws):
    """(argv, extras, check, key) for ``command``: check(proc, ws) asserts on its output; a command with the
    key of one run before it is not run again."""
    words = shlex.split(command.replace("/work/shared/datasets", str(ws["datasets"])))
    if words[0] == "recbole-sigma":
        words = ["python", "-c", "import sys; from recbole_sigma.cli import main; sys.exit(main())",
                 *words[1:]]
    argv = [sys.executable, *words[1:]]
    if words[1] in ("run_recbole_sigma.py", "-c"):
        options = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
        if "params_file" in options:
            argv += TRAIN_SUFFIX + SEARCH_SUFFIX[options.get("tool", "hyperopt")]
            return argv, ("tune",), check_search, tuple(argv)
        return argv + TRAIN_SUFFIX, (), check_training, tuple(argv + TRAIN_SUFFIX)
    if words[1] == "benchmarks/reproduce.py":
        name = re.sub(r"\W+", "-", command)[-80:]
        suffix = HARNESS_SUFFIX + ["--runs-dir", f"runs/{name}", "--output", f"results/{name}.md"]
        dry = harness_dry_run(words)
        argv += suffix + (["--dry-run"] if dry else ["--models", *HARNESS_MODELS])
        return argv, (), (check_plan if dry else check_report(name)), tuple(argv)
    if words[1] == "-m" and words[2] == "recbole_sigma.grouped_eval":
        return argv, (), check_grouped(words), tuple(argv)
    if words[1] == "-m" and words[2] == "recbole_sigma.gpu_check":
        return argv + ["--quick"], (), check_gpu_check(words), tuple(argv)
    if words[1].startswith("benchmarks/") and Path(words[1]).name in BENCH_SUFFIX:
        name = Path(words[1]).name
        # speed.py's commands differ in models, dataset and L; cut to one model, one run per mode covers each path
        same = ("speed.py", "--synthetic" in words) if name == "speed.py" else tuple(argv)
        if name == "speed.py" and not {"--synthetic", "--dataset"} & {w.partition("=")[0] for w in words}:
            # the default dataset, ml-100k in full, takes a minute here: the same path on the tiny Beauty
            argv += ["--dataset=amazon-beauty", f"--data_path={ws['datasets']}"]
        return argv + BENCH_SUFFIX[name], (), (check_table if name == "speed.py" else check_scan), same
    return None


METRIC = r"(hit|ndcg|mrr)@10: \d\.\d{4}"


def check_training(proc, ws):
    for label in ("best valid", "test result"):
        line = next((x for x in proc.stdout.splitlines() if x.startswith(f"{label}: ")), "")
        assert len(re.findall(METRIC, line)) == 3, f"no {label} HR/NDCG/MRR@10 line in:\n{proc.stdout[-2000:]}"
    assert "np.float64" not in proc.stdout + proc.stderr


def check_search(proc, ws):
    assert "best params: {" in proc.stdout, proc.stdout[-2000:]
    assert re.search(r"^test result: .*hit@10", proc.stdout, re.M), proc.stdout[-2000:]


def check_plan(proc, ws):
    assert re.search(r"-s2020", proc.stdout), proc.stdout[-2000:]


def check_report(name):
    def check(proc, ws):
        report = (ws["work"] / "results" / f"{name}.md").read_text()
        assert "HR@10" in report or "hit@10" in report.lower(), report[:2000]
        assert (ws["work"] / "results" / f"{name}-groups.png").read_bytes()[:4] == b"\x89PNG"
    return check


def check_grouped(words):
    def check(proc, ws):
        assert re.search(r"^\| SIGMA \| .* \| \d\.\d{4} / \d\.\d{4} / \d\.\d{4} \|$", proc.stdout, re.M), proc.stdout
        plot = words[words.index("--plot") + 1] if "--plot" in words else None
        if plot:
            assert (ws["work"] / plot).read_bytes()[:4] == b"\x89PNG"
    return check


def check_gpu_check(words):
    def check(proc, ws):
        out = ws["work"] / (words[words.index("--out") + 1] if "--out" in words else ".")
        report = json.loads((out / "gpu_report.json").read_text(encoding="utf-8"))
        assert report["comparisons"] and report["backends"], proc.stdout[-2000:]
        assert (out / "gpu_report.md").read_text(encoding="utf-8").startswith("# gpu_check"), proc.stdout[-2000:]
    return check


def check_table(proc, ws):
    for model in ("SIGMA", "Mamba4Rec"):
        assert re.search(rf"^\| {model} \| \d+\.\d\d \| ", proc.stdout, re.M), proc.stdout[-2000:]


def check_scan(proc, ws):
    assert re.search(r"^fused +\d+ +\d\.\d{3} +\d\.\d{3} ", proc.stdout, re.M), proc.stdout[-2000:]


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
def test_the_docs_show_the_commands_this_test_expects():
    commands = dict((c, i) for i, c in COMMANDS)
    assert "python run_recbole_sigma.py --model=SASRec --dataset=ml-100k" in commands
    assert any("benchmarks/reproduce.py" in c and "FEARec" in c for c in commands)  # through the nohup line
    assert "python -m recbole_sigma.grouped_eval saved/SIGMA-amazon-beauty-best.pth --plot groups.png" in commands
    assert not [c for c in NOT_RUN if c not in commands], "a listed command is no longer in the docs"


def test_extraction_handles_continuations_nohup_and_redirections():
    text = ("Run it:\n\n    nohup python benchmarks/reproduce.py --dataset x \\\n        --models A B > runs/x.out 2>&1 &\n"
            "    pip install -e . && python run_recbole_sigma.py --model=SIGMA   # a comment\n\n"
            "Then `python -m recbole_sigma.grouped_eval a.pth` and `pip install x`.\n")
    assert shell_commands(text) == [
        (3, "python benchmarks/reproduce.py --dataset x --models A B"),
        (5, "python run_recbole_sigma.py --model=SIGMA"),
        (7, "python -m recbole_sigma.grouped_eval a.pth"),
    ]


def test_the_import_blocker_refuses_extras_and_allows_the_install(workspace):
    assert "pytest" in workspace["blocked"][()] and "hyperopt" in workspace["blocked"][()]
    assert "hyperopt" not in workspace["blocked"][("tune",)]
    assert "matplotlib" not in workspace["blocked"][()]  # an install dependency: the docs' plots work
    code = ("import importlib.util, matplotlib, recbole, torch\nprint(importlib.util.find_spec('pytest'))\n"
            "try:\n    import pytest\nexcept ModuleNotFoundError as e:\n    print(e)")
    proc = run_command([sys.executable, "-c", code], workspace)
    assert proc.returncode == 0 and proc.stdout.split("\n")[:2] == ["None", "No module named 'pytest'"], proc.stderr


@pytest.mark.parametrize("where, command", COMMANDS, ids=[i for i, _ in COMMANDS])
def test_documented_command_runs(where, command, workspace):
    if command in NOT_RUN:
        pytest.skip(NOT_RUN[command])
    planned = plan(command, workspace)
    assert planned is not None, (f"{where}: no plan for {command!r}: give it one in plan() or a reason in NOT_RUN")
    argv, extras, check, key = planned
    same = workspace["ran"].setdefault(key, where)
    if same != where:
        pytest.skip(f"cut to the small slice, the same run as {same}")
    for path, maker in MAKES.items():  # a file an earlier command makes, when this one runs alone
        if path in command and not (workspace["work"] / path).exists():
            made = run_command(plan(maker, workspace)[0], workspace)
            assert made.returncode == 0, made.stderr[-3000:]
    proc = run_command(argv, workspace, extras)
    assert proc.returncode == 0, f"{where}: {shlex.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    check(proc, workspace)
