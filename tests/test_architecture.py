"""The package's layers, checked by reading every module's imports (top level and inside functions).

The rules are the ones ARCHITECTURE.md draws: scanning never imports training; reporting imports
neither TensorFlow/Keras nor scanning nor training; nothing imports the CLI; the bottom layers
(``contract``, ``common``) import no other layer; only the CLI reaches the web app (``web``), the one
place Streamlit is imported; and no two modules import each other, directly or round a longer loop.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agebatch"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, as dotted names (``from a import b`` counts a.b when b is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
IMPORTS = {
    name: {i for i in _imports(path) if i in MODULES or not i.startswith("agebatch")} for name, path in MODULES.items()
}


def _agebatch_imports(module: str) -> set[str]:
    """The package's own modules ``module`` imports (itself aside: a package importing its submodules)."""
    return {i for i in IMPORTS[module] if i in MODULES and i not in ("agebatch", module)}


def _in_cli(module: str) -> bool:
    return module == "agebatch.cli" or module.startswith("agebatch.cli.")


def _layer_modules(prefix: str) -> list[str]:
    return sorted(m for m in MODULES if m == prefix or m.startswith(prefix + "."))


def test_the_layers_exist():
    for layer in (
        "agebatch.scanning",
        "agebatch.training",
        "agebatch.reporting",
        "agebatch.common",
        "agebatch.modelfile",
    ):
        assert len(_layer_modules(layer)) > 1, layer
    assert "agebatch.contract" in MODULES and "agebatch.cli" in MODULES


@pytest.mark.parametrize("module", _layer_modules("agebatch.scanning"))
def test_scanning_never_imports_training_or_reporting(module):
    bad = {i for i in _agebatch_imports(module) if i.startswith(("agebatch.training", "agebatch.reporting"))}
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", _layer_modules("agebatch.modelfile"))
def test_the_model_file_layer_sits_under_scanning_and_training(module):
    allowed = ("agebatch.contract", "agebatch.common", "agebatch.modelfile")
    bad = {i for i in _agebatch_imports(module) if not i.startswith(allowed)}
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", _layer_modules("agebatch.reporting"))
def test_reporting_imports_no_tensorflow_no_scanning_no_training(module):
    bad = {
        i
        for i in IMPORTS[module]
        if i.split(".")[0] in ("tensorflow", "keras", "ai_edge_litert", "mtcnn")
        or i.startswith(("agebatch.scanning", "agebatch.training"))
        or (i.startswith("agebatch.modelfile") and i != "agebatch.modelfile.card")  # the card is plain JSON
    }
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", _layer_modules("agebatch.training"))
def test_training_never_imports_reporting(module):
    bad = {i for i in _agebatch_imports(module) if i.startswith("agebatch.reporting")}
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "module", ["agebatch.contract", *_layer_modules("agebatch.results"), *_layer_modules("agebatch.common")]
)
def test_bottom_layers_import_no_upper_layer(module):
    allowed = ("agebatch.contract", "agebatch.common", "agebatch.results")
    bad = {i for i in _agebatch_imports(module) if not i.startswith(allowed)}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_only_the_cli_and_the_web_layer_touch_the_web_layer_and_streamlit():
    for module in MODULES:
        if module.startswith("agebatch.web") or _in_cli(module) or module == "agebatch.__main__":
            continue
        bad = {i for i in IMPORTS[module] if i.startswith("agebatch.web") or i.split(".")[0] == "streamlit"}
        assert not bad, f"{module} imports {sorted(bad)}"
    streamlit_users = sorted(m for m in MODULES if any(i.split(".")[0] == "streamlit" for i in IMPORTS[m]))
    # the page, its launcher, and the extra's check
    assert streamlit_users == ["agebatch.web.app", "agebatch.web.launch", "agebatch.web.server"]


def test_nothing_imports_the_cli():
    importers = sorted(
        m for m in MODULES if any(_in_cli(i) for i in IMPORTS[m]) and not _in_cli(m) and m != "agebatch.__main__"
    )
    assert not importers


def test_no_import_cycles():
    graph = {m: _agebatch_imports(m) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycle = path[path.index(other) :] + [other] if other in path else [module, other]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"


def test_the_module_table_names_every_module_and_no_other():
    """ARCHITECTURE.md's table of modules is the map: a module missing from it, or a row naming a module
    that is gone, fails here."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = text[text.index("## Modules") :]
    named = set(re.findall(r"^\| `([a-z_/]+\.py)` \|", table, re.M))
    modules = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__main__.py" and (path.name != "__init__.py" or path.parent.name == "cli")
    }
    assert not modules - named, f"not in ARCHITECTURE.md's table: {sorted(modules - named)}"
    assert not named - modules, f"in ARCHITECTURE.md's table but not in the package: {sorted(named - modules)}"
