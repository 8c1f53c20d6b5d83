"""Data flows one way through the package: foundation -> data -> text -> model -> train -> evaluate -> inference ->
serve -> runs and commands. No module imports one of a later stage, no imports go round in a circle, and only
`train/` runs an optimiser step."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sentiment_gru"
LAYOUT_PAGE = PACKAGE.parent / "docs" / "layout.md"

# Each stage, in the order data flows: a subpackage, or top-level modules. A module may import modules of its own
# stage or earlier ones.
STAGES = [
    ("foundation", {"errors", "config", "files", "metrics"}),
    ("data", {"data"}),
    ("text", {"text"}),
    ("model", {"model"}),
    ("train", {"train"}),
    ("evaluate", {"evaluate"}),
    ("inference", {"inference"}),
    ("serve", {"serve"}),
    ("runs and commands", {"runs", "cli"}),
]
RANK = {name: rank for rank, (_, names) in enumerate(STAGES) for name in names}


def modules() -> dict[str, Path]:
    """Dotted module name inside the package (`data.load`, `errors`) -> its file; packages' __init__ left out."""
    return {".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
            for path in sorted(PACKAGE.rglob("*.py")) if path.name != "__init__.py"}


def stage(module: str) -> int:
    return RANK[module.split(".")[0]]


def _target(module: str, node: ast.ImportFrom) -> str:
    """The dotted name inside the package that an ImportFrom reads from ('' for the package itself)."""
    if node.level == 0:
        return (node.module or "").removeprefix("sentiment_gru").lstrip(".")
    base = module.split(".")[:-1]  # the package the module is in
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere (top level or inside functions)."""
    known = modules()
    graph = {}
    for module, path in known.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sentiment_gru")):
                target = _target(module, node)
                found.add(target)
                found |= {f"{target}.{alias.name}".lstrip(".") for alias in node.names}  # `from . import kernels`
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix("sentiment_gru.") for a in node.names if a.name.startswith("sentiment_gru.")}
        graph[module] = (found & set(known)) - {module}
    return graph


def test_every_module_has_a_stage():
    unplaced = sorted(m for m in modules() if m.split(".")[0] not in RANK)
    assert not unplaced, f"place each new module or subpackage in STAGES (and docs/layout.md): {unplaced}"


def test_the_layout_page_lists_every_module():
    page = LAYOUT_PAGE.read_text(encoding="utf-8")
    missing = sorted(m for m in modules() if f"`{m.replace('.', '/')}.py`" not in page)
    assert not missing, f"add a line on each module's job to the table in docs/layout.md: {missing}"


def test_no_module_imports_one_that_comes_later():
    backwards = [f"{module} ({STAGES[stage(module)][0]}) imports {target} ({STAGES[stage(target)][0]})"
                 for module, targets in imports().items() for target in sorted(targets) if stage(target) > stage(module)]
    assert not backwards, backwards


def test_no_import_cycle():
    graph = imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            assert state.get(target) != 1, f"import cycle: {' -> '.join([*path, module, target])}"
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def _optimiser_work(path: Path) -> list[str]:
    """What in a file builds an optimiser or runs a step: torch.optim, .backward(), .zero_grad(), optimizer.step()."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr == "optim" and isinstance(node.value, ast.Name) and node.value.id == "torch":
            found.append(f"torch.optim (line {node.lineno})")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.startswith("torch.optim") for n in names):
                found.append(f"imports torch.optim (line {node.lineno})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("backward", "zero_grad"):
            found.append(f".{node.func.attr}() (line {node.lineno})")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "step"
              and "optim" in ast.unparse(node.func.value).lower()):
            found.append(f"{ast.unparse(node.func)}() (line {node.lineno})")
    return found


def test_only_train_runs_an_optimiser_step():
    outside = {m: found for m, path in modules().items() if not m.startswith("train.") and (found := _optimiser_work(path))}
    assert not outside, f"optimisation belongs in sentiment_gru/train/: {outside}"


def test_the_checks_see_the_code():
    """The checks above see real imports, relative and lazy ones inside functions included, and real optimiser steps."""
    graph = imports()
    assert "model.classifier" in graph["inference.folder"]  # imported inside load_model
    assert "model.kernels" in graph["model.encoder"]  # `from . import kernels`
    assert {"evaluate.scoring", "evaluate.report", "train.fit"} <= graph["runs"]
    assert any("optimizer.step()" in f for path in (PACKAGE / "train").glob("*.py") for f in _optimiser_work(path))
