"""The scheduler package's shape, checked from its source: imports flow one way
(no cycles, lazy imports included) and no module keeps mutable state."""

import ast
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
CRM = PROJECT_DIR / "crm"


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def crm_modules() -> dict[str, ast.Module]:
    return {
        module_name(path): ast.parse(path.read_text(), str(path))
        for path in sorted(CRM.rglob("*.py"))
        if "migrations" not in path.parts
    }


def imported_by(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The crm modules `name` imports anywhere in it, at import time or later."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in known and target != name}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = crm_modules()
    known = set(modules)
    # A package's __init__ importing nothing does not make a cycle of its submodules.
    return {
        name: imported_by(name, tree, known) - {"crm", "crm.scheduler"}
        for name, tree in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting, done = [], set()

    def visit(node):
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_crm_has_no_import_cycle_not_even_through_lazy_imports():
    cycle = find_cycle(import_graph())

    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_run_reports_up_only_through_signals():
    """execution runs jobs; it never calls the command queue, alerts or the runner."""
    graph = import_graph()

    assert graph["crm.scheduler.execution"].isdisjoint(
        {"crm.scheduler.commands", "crm.scheduler.alerts", "crm.scheduler.runner",
         "crm.scheduler.intake", "crm.scheduler.recovery"}
    )  # fmt: skip
    assert graph["crm.scheduler.commands"] <= {"crm.scheduler.models"}


MUTABLE_CALLS = {"dict", "list", "set", "deque", "defaultdict", "OrderedDict", "Counter"}
ALLOWED_MODULE_OBJECTS = {
    "logging.getLogger",
    "contextvars.ContextVar",
    "Signal",
    "timedelta",
    "getLogger",
    "ContextVar",
}


def mutable_module_state(tree: ast.Module) -> list[str]:
    """Names bound at module level to mutable containers or objects (other than
    constant tables), and `global` statements."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            value = node.value
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [ast.unparse(target) for target in targets]
            if isinstance(value, ast.Dict | ast.List | ast.Set | ast.ListComp | ast.DictComp):
                # UPPER_CASE: a constant table, never written to.
                found += [name for name in names if not name.isupper()]
            elif isinstance(value, ast.Call):
                called = ast.unparse(value.func)
                if called in MUTABLE_CALLS or (
                    called not in ALLOWED_MODULE_OBJECTS
                    and (called[:1].isupper() or called.endswith(("Lock", "Event")))
                ):
                    found += names
    found += [
        f"global {', '.join(node.names)}" for node in ast.walk(tree) if isinstance(node, ast.Global)
    ]
    return found


@pytest.mark.parametrize(
    "name",
    sorted(name for name in crm_modules() if name.startswith("crm.scheduler")),
)
def test_no_scheduler_module_keeps_mutable_state(name):
    assert mutable_module_state(crm_modules()[name]) == []


def test_the_state_finder_finds_it():
    source = "a = {}\nb = []\nCOLOURS = {'ok': 'green'}\n"
    source += "lock = threading.Lock()\nlog = OutageLog()\nX = 3\n"
    source += "logger = logging.getLogger('x')\ndef f():\n    global a\n"

    assert mutable_module_state(ast.parse(source)) == ["a", "b", "lock", "log", "global a"]


def private_reaches(tree: ast.Module, known: set[str]) -> list[str]:
    """`module._name` uses of another crm module's private names."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known and alias.asname:
                    aliases[alias.asname] = alias.name
    return [
        f"{aliases[node.value.id]}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]


def test_no_crm_module_reaches_into_another_ones_private_names():
    modules = crm_modules()

    reaches = {
        name: found
        for name, tree in modules.items()
        if (found := private_reaches(tree, set(modules)))
    }

    assert reaches == {}


def test_the_private_finder_finds_it():
    tree = ast.parse("from crm.scheduler import startup\nstartup._runner.wake()\n")

    assert private_reaches(tree, {"crm.scheduler.startup"}) == ["crm.scheduler.startup._runner"]
