"""The layers of docs/ARCHITECTURE.md: every import of facerec, gallery and forgetting points to a
layer listed before the importing module's own (lazy imports inside functions included)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [  # bottom to top; a module may import its own layer's package and those before it
    ("gallery",),
    ("facerec.core",),
    ("facerec.metrics",),
    ("facerec.detect",),
    ("facerec.data",),
    ("facerec.models",),
    ("facerec.pretrained",),
    ("facerec.workspace",),
    ("facerec.recognition",),
    ("facerec.training",),
    ("facerec.evaluation", "facerec.distill", "facerec.testing"),
    ("forgetting",),
    ("facerec.public",),
    ("facerec.server",),
    ("facerec.cli",),
    ("facerec.__main__",),
]


def _layer(module: str) -> tuple[int, str]:
    for rank, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                return rank, name
    if module == "facerec":  # the package itself: __version__ and the public API's lazy names
        return -1, "facerec"
    raise AssertionError(f"{module} is in no layer of docs/ARCHITECTURE.md")


def _imports(path: Path, module: str, is_package: bool):
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [f"{target}.{a.name}" for a in node.names] if target == "facerec" else [target]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t.split(".")[0] in ("facerec", "gallery", "forgetting"):
                yield node.lineno, t


def _modules():
    for top in ("facerec", "gallery", "forgetting"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            yield path, ".".join(parts[:-1] if is_package else parts), is_package


def test_every_import_points_to_an_earlier_layer():
    wrong = []
    for path, module, is_package in _modules():
        if module == "facerec":
            continue  # the package's __init__ (the public API) may name any layer, lazily
        own_rank, own = _layer(module)
        for line, target in _imports(path, module, is_package):
            if target.startswith("facerec.__version__"):
                continue
            rank, layer = _layer(target)
            if rank > own_rank or (rank == own_rank and layer != own):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {target} ({layer})")
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_sees_a_wrong_import(tmp_path):
    """The check itself: an upward import (the workspace reaching into the CLI) is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from facerec.cli.main import main\n")
    found = list(_imports(bad, "facerec.workspace.bad", False))
    assert found == [(2, "facerec.cli.main")]
    assert _layer(found[0][1])[0] > _layer("facerec.workspace.bad")[0]
