"""Results follow the code: a digest of the library code a job runs, passed to it as a param.

Snakemake re-runs a job when its params change. Each rule passes `code=digest(modules,
scripts)`: a SHA-256 of the workflow script the rule runs and of every module of `pipeline`
the given modules import, directly or through each other (found by reading their `import`
statements; a package's `__init__.py` counts as imported with it). Files are compared by their
syntax tree without docstrings, so an edit of a comment, a docstring or the layout re-runs
nothing, and neither does `touch` or a checkout that leaves the content as it was; any other
edit re-runs exactly the jobs that execute that code (and, through their outputs, the jobs
downstream of them).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "pipeline"


def _module_file(name: str) -> Path | None:
    """The file of module `pipeline...` (a module or a package's __init__), None if none."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(tree: ast.AST) -> set[str]:
    """The `pipeline` modules a syntax tree imports (`from pipeline.x import y`: x.y when y is a
    module, else x)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                names.add(sub if _module_file(sub) is not None else node.module)
    return names


def _normalised(tree: ast.AST) -> str:
    """The syntax tree without docstrings, as text."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


@cache
def _parse(path: Path) -> tuple[str, frozenset[str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return _normalised(tree), frozenset(_imports(tree))


def _packages(name: str) -> list[str]:
    """`pipeline.a.b` -> [pipeline, pipeline.a]: the packages importing it executes."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(modules: Iterable[str], scripts: Iterable[str | Path] = ()) -> list[Path]:
    """Every file of `pipeline` the modules and scripts import, directly or not, sorted."""
    todo = list(modules)
    for script in scripts:
        todo += _parse(Path(script).resolve())[1]
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            raise ModuleNotFoundError(f"no module {name} in {REPO / PACKAGE}")
        seen[name] = path
        todo += [*_parse(path)[1], *_packages(name)]
    return sorted(set(seen.values()))


def digest(modules: Iterable[str], scripts: Iterable[str | Path] = ()) -> str:
    """SHA-256 (hex) of the normalised code of `scripts` and of every module they and `modules`
    import from `pipeline`."""
    scripts = [Path(s).resolve() for s in scripts]
    h = hashlib.sha256()
    for path in [*scripts, *closure(modules, scripts)]:
        h.update(str(path.relative_to(REPO)).encode())
        h.update(_parse(path)[0].encode())
    return h.hexdigest()
