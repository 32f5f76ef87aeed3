"""The documentation: the strict site build, every public object on an API page with a docstring, no machine paths."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import natgrad

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
# documented elsewhere: the CLI's functions by the generated command-line reference, the version by its page
NOT_ON_API_PAGES = {"natgrad.__main__", "natgrad.cli", "natgrad.version"}


def _modules() -> list[str]:
    return sorted({"natgrad", *(m.name for m in pkgutil.walk_packages(natgrad.__path__, "natgrad."))}
                  - {"natgrad.__main__"})


def _public(module_name: str) -> dict[str, object]:
    """The functions and classes a module defines, by full name, leaving out names starting with ``_``."""
    module = importlib.import_module(module_name)
    return {f"{module_name}.{k}": v for k, v in vars(module).items()
            if not k.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
            and getattr(v, "__module__", None) == module_name}


def _resolve(identifier: str) -> object:
    return pkgutil.resolve_name(identifier)


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict` fails on a broken link or anchor, an unresolved cross-reference or a missing
    object; the command-line reference lists every command, the configuration page every field."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    cli = (site / "cli" / "index.html").read_text()
    import typer

    from natgrad.cli import app

    def commands(cmd, path):
        yield " ".join(path), cmd
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd, info_name=path[-1])
            for sub in cmd.list_commands(ctx):
                yield from commands(cmd.get_command(ctx, sub), [*path, sub])

    for name, cmd in commands(typer.main.get_command(app), ["natgrad"]):
        assert f"<code>{name}</code>" in cli, name
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in cli, (name, opt)
    config = (site / "api" / "natgrad" / "index.html").read_text()
    for cls in (natgrad.NaturalConfig, natgrad.VPGConfig, natgrad.PPOConfig, natgrad.PPOKLConfig, natgrad.TRPLConfig):
        for field in (f.name for f in dataclasses.fields(cls)):  # the options (not ClassVars)
            assert f"natgrad.config.{_owner(cls, field).__name__}.{field}" in config, (cls.__name__, field)


def _owner(cls: type, field: str) -> type:
    """The class in ``cls``'s MRO whose body defines ``field`` (where its docstring and anchor are)."""
    return next(c for c in reversed(cls.__mro__) if field in getattr(c, "__annotations__", {}))


def test_every_public_function_and_class_is_on_an_api_page() -> None:
    """A module on a page (``::: natgrad.x``) documents what it defines; so does a directive naming the object.
    A module added to the package without a page fails here, natgrad.runs.callbacks included."""
    directives = [m.group(1) for page in API.glob("*.md")
                  for m in re.finditer(r"^::: ([\w.]+)", page.read_text(), re.M)]
    documented: set[str] = set()
    for identifier in directives:
        obj = _resolve(identifier)
        documented.add(identifier)
        if inspect.ismodule(obj):
            documented |= set(_public(obj.__name__))
        elif inspect.isclass(obj) or inspect.isfunction(obj):
            documented.add(f"{obj.__module__}.{obj.__qualname__}")
    missing = [name for module in _modules() if module not in NOT_ON_API_PAGES for name in _public(module)
               if name not in documented]
    assert not missing, f"on no page under docs/api/: {missing}"


def test_every_public_object_has_a_docstring() -> None:
    """Modules, their functions and classes, and the public methods and properties of those classes."""
    missing = []
    for module_name in _modules():
        module = importlib.import_module(module_name)
        if not (module.__doc__ or "").strip():
            missing.append(module_name)
        for name, obj in _public(module_name).items():
            doc = obj.__doc__ or ""
            if not doc.strip() or (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")):
                missing.append(name)  # a dataclass without a docstring gets its signature as one
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    if not attr.startswith("_") and inspect.isfunction(fn) and not (fn.__doc__ or "").strip():
                        missing.append(f"{name}.{attr}")
    assert not missing, f"no docstring: {missing}"


DOTTED_PATH = re.compile(r"(?<![\w./-])natgrad(?:\.[A-Za-z_]\w*)+(?!\w)(?<!\.md)")


def test_every_dotted_path_in_the_docs_imports() -> None:
    """Each ``natgrad.x.y`` that README.md or a page under docs/ names (the result pages of benchmark runs under
    docs/benchmarks/ aside) is a module or an attribute today: no page teaches a path the package has moved."""
    pages = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md")
                                         if not p.is_relative_to(ROOT / "docs" / "benchmarks"))]
    broken = []
    for page in pages:
        for path in sorted(set(DOTTED_PATH.findall(page.read_text()))):
            try:
                _resolve(path)
            except (ImportError, AttributeError):
                broken.append(f"{page.relative_to(ROOT)}: {path}")
    assert not broken, "\n".join(broken)


MACHINE_PATHS = re.compile(r"(/work/|/root/|/home/\w|/Users/\w|/tmp/|/opt/|/private/var/|[A-Za-z]:\\\\Users)")


def test_no_machine_paths_in_the_documentation() -> None:
    """Paths of one machine (``/work/…``, ``/home/…``, ``/tmp/…``) mean nothing to a reader: write a placeholder
    (``PEERS/bin/python``) or a path relative to the repository. README, changelog and every text file under docs/."""
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "mkdocs.yml",
             *sorted(p for p in (ROOT / "docs").rglob("*") if p.suffix in {".md", ".json", ".css", ".yml", ".txt"})]
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}" for path in files
             for n, line in enumerate(path.read_text().splitlines(), 1) if MACHINE_PATHS.search(line)]
    assert not found, "\n".join(found)


def test_the_version_is_the_same_in_both_places() -> None:
    """src/natgrad/version.py and pyproject.toml (docs/versioning.md)."""
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert version == natgrad.__version__


def test_the_readme_keeps_its_two_set_up_lines() -> None:
    """.ci/run runs the README's one `bash scripts/setup.sh && ... pytest` line; the other set-up line trains."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len([line for line in lines if re.match(r"^bash scripts/setup\.sh && .*pytest", line)]) == 1
    assert "bash scripts/setup.sh && .venv/bin/natgrad train --algo trpo --env CartPole-v1 --steps 100000" in lines
