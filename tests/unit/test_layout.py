"""The kernel's layout is its architecture (docs/architecture.md, "The
kernel's layout"): packages import only downward, handlers live in
syscalls/ alone, and each constant is defined once.  Checked on the source
with the ast module, every import counted (those inside functions and under
TYPE_CHECKING too), and checked to fail on a forbidden import."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[2] / "services" / "kernel"
# Lowest first.  A module may import its own package and the ranks below
# its own; drivers and fsimpl share a rank and do not import each other.
RANKS = {"abi": 0, "core": 1, "mm": 2, "fs": 3, "net": 4, "sched": 5, "drivers": 6, "fsimpl": 6,
         "syscalls": 7, "entry": 8, "main": 9, "__main__": 10}


def package_of(module: str) -> str:
    """services.kernel.fs.vfs -> fs; services.kernel.main -> main."""
    return module.split(".")[2]


def sources() -> dict[str, str]:
    return {"services.kernel." + ".".join(p.relative_to(KERNEL).with_suffix("").parts):
            p.read_text() for p in KERNEL.rglob("*.py") if p.name != "__init__.py"}


def _imported(module: str, tree: ast.AST) -> set[str]:
    """Every services.kernel module tree imports, wherever the import is."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("services.kernel.")}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:                        # relative: from its package
                base = ".".join(module.split(".")[:-node.level] + [node.module])
            if base == "services.kernel" or base.startswith("services.kernel."):
                if base.count(".") == 2:          # from services.kernel.fs import vfs
                    out |= {f"{base}.{a.name}" for a in node.names}
                else:
                    out.add(base)
    return out


def violations(modules: dict[str, str]) -> list[str]:
    found = []
    constants = defaultdict(list)
    for module, text in sorted(modules.items()):
        tree = ast.parse(text)
        here = package_of(module)
        for target in sorted(_imported(module, tree)):
            there = package_of(target)
            if there != here and not RANKS[there] < RANKS[here]:
                found.append(f"{module} imports {target}: {here} may not import {there}")
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    node.name.startswith("sys_") and here != "syscalls":
                found.append(f"{module}.{node.name}: a handler outside syscalls/")
            names = []
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    elts = t.elts if isinstance(t, ast.Tuple) else [t]
                    names += [e.id for e in elts if isinstance(e, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.append(node.target.id)
            for name in names:
                if name.lstrip("_").isupper():
                    constants[name.lstrip("_")].append(module)
    for name, where in sorted(constants.items()):
        if len(where) > 1:
            found.append(f"{name} is defined in {', '.join(where)}: define it once")
    return found


def test_the_kernel_keeps_its_layout():
    assert violations(sources()) == []


def test_every_package_has_a_rank():
    assert {p.name for p in KERNEL.iterdir() if p.is_dir() and p.name != "__pycache__"} \
        | {"main", "__main__"} == set(RANKS)


def test_the_check_finds_what_it_forbids():
    modules = sources()
    modules["services.kernel.fs.bad"] = (
        "def f():\n    from services.kernel.syscalls.paths import resolve\n"
        "from services.kernel.sched import signals\n"
        "PAGE = 4096\n"
        "def sys_bad(t): pass\n")
    modules["services.kernel.drivers.bad"] = "import services.kernel.fsimpl.tmpfs\n"
    assert violations(modules) == [
        "services.kernel.drivers.bad imports services.kernel.fsimpl.tmpfs: "
        "drivers may not import fsimpl",
        "services.kernel.fs.bad imports services.kernel.sched.signals: fs may not import sched",
        "services.kernel.fs.bad imports services.kernel.syscalls.paths: fs may not import syscalls",
        "services.kernel.fs.bad.sys_bad: a handler outside syscalls/",
        "PAGE is defined in services.kernel.abi.arch, services.kernel.fs.bad: define it once",
    ]


def test_the_kernel_gives_what_its_layers_may_ask_of_it():
    """core/services.py's KernelServices is what sched, fs and the rest use
    of task.kernel: the entry's Kernel has each member (a method, or an
    attribute its methods set)."""
    from services.kernel.core.services import KernelServices
    tree = ast.parse((KERNEL / "entry" / "kernel.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Kernel"]
    has = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    has |= {t.attr for n in ast.walk(cls) if isinstance(n, (ast.Assign, ast.AnnAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
    wanted = {n for n in dir(KernelServices) if not n.startswith("_")} | \
        set(KernelServices.__annotations__)
    assert wanted - has == set()
