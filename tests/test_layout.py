"""Data flows one way through the package: load -> tokenize -> batch -> model -> train -> artifacts -> evaluate ->
report / predict / serve. No module imports one placed after it, and no imports go round in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sentiment_gru"

# Each module's stage, in the order data flows; a module may import modules of its own stage or earlier ones.
STAGES = [
    ("foundation", {"errors", "config", "files"}),
    ("load", {"corpus", "data", "synthetic"}),
    ("tokenize", {"lexicon", "tokenization"}),
    ("batch", {"batching"}),
    ("model", {"kernels", "encoder", "model"}),
    ("train", {"distributed", "precision", "schedule", "checkpoint", "pretraining", "training"}),
    ("artifacts", {"artifacts", "export", "onnx_backend"}),
    ("evaluate", {"calibration", "evaluation"}),
    ("report / predict / serve", {"report", "card", "predict", "explain", "runs", "serve", "cli"}),
]
STAGE = {module: rank for rank, (_, modules) in enumerate(STAGES) for module in modules}


def imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere (top level or inside functions)."""
    graph = {}
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem == "__init__":
            continue
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module} if node.module else {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sentiment_gru."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("sentiment_gru.")}
        graph[path.stem] = ({m.split(".")[0] for m in found} & modules) - {path.stem, "__init__"}
    return graph


def test_every_module_has_a_stage():
    unplaced = sorted(set(imports()) - set(STAGE))
    assert not unplaced, f"place each new module in STAGES (and the README's layout list): {unplaced}"


def test_the_readme_layout_lists_every_module():
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("\n## ", 1)]
    missing = sorted(module for module in imports() if f"`{module}.py`" not in layout)
    assert not missing, f"add a line on each module's job to the README's layout table: {missing}"


def test_no_module_imports_one_that_comes_later():
    backwards = [f"{module} ({STAGES[STAGE[module]][0]}) imports {target} ({STAGES[STAGE[target]][0]})"
                 for module, targets in imports().items() for target in sorted(targets) if STAGE[target] > STAGE[module]]
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


def test_the_graph_is_read_from_the_code():
    """The checks above see real imports, lazy ones inside functions included."""
    graph = imports()
    assert "model" in graph["artifacts"]  # imported inside load_model
    assert {"evaluation", "report", "training"} <= graph["runs"]
