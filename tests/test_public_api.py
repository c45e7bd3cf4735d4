"""Every package declares ``__all__``; each public name imports and carries its own docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import lumos

PACKAGES = ["lumos"] + sorted(m.name for m in pkgutil.walk_packages(lumos.__path__, "lumos.") if m.ispkg)


@pytest.mark.parametrize("name", PACKAGES)
def test_package_declares_all_and_every_name_is_documented(name):
    pkg = importlib.import_module(name)
    assert "__all__" in vars(pkg), f"{name}/__init__.py has no __all__"
    assert pkg.__doc__ and pkg.__doc__.strip(), f"{name} has no docstring"
    names = list(pkg.__all__)
    assert len(names) == len(set(names)), f"{name}.__all__ repeats a name"
    undocumented = []
    for public in names:
        obj = getattr(pkg, public)  # imports (lazy packages load it here)
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
            if not (obj.__doc__ or "").strip():
                undocumented.append(public)
    assert not undocumented, f"{name}: public names without a docstring: {undocumented}"


def test_lazy_packages_list_exactly_what_they_load():
    import lumos.core

    assert lumos.__all__ == ["__version__", *lumos._EXPORTS]
    assert lumos.core.__all__ == list(lumos.core._EXPORTS)
