"""Registries: lazy targets, missing dependencies with install hints, validation, conflicts."""

from __future__ import annotations

import pytest

from escale_core.errors import MissingDependencyError, PluginConflictError, PluginError
from escale_core.registry import Registry


def test_lazy_target_is_imported_on_first_load() -> None:
    registry = Registry("relay")
    entry = registry.add("p", "x", "escale_core.patterns:compile_pattern")
    assert isinstance(entry.target, str)
    from escale_core.patterns import compile_pattern

    assert entry.load() is compile_pattern and entry.target is compile_pattern


def test_missing_dependency_gives_the_install_hint() -> None:
    registry = Registry("relay")
    entry = registry.add(
        "p",
        "s3",
        "s3fs_not_here:S3",
        requires=("s3fs_not_here",),
        install_hint="pip install 'escale[s3]'",
    )
    assert not entry.available and entry.missing() == ["s3fs_not_here"]
    with pytest.raises(
        MissingDependencyError, match=r"needs s3fs_not_here.*pip install 'escale\[s3\]'"
    ):
        entry.load()


def test_lazy_target_whose_module_is_missing_names_the_module() -> None:
    entry = Registry("cipher").add("p", "c", "not_a_module_xyz:C")
    with pytest.raises(MissingDependencyError, match="not_a_module_xyz"):
        entry.load()


def test_lazy_target_with_a_wrong_attribute_names_the_plugin() -> None:
    entry = Registry("cipher").add("plug", "c", "escale_core.patterns:Nope")
    with pytest.raises(PluginError, match="plugin 'plug'"):
        entry.load()


@pytest.mark.parametrize("name", ["", "Upper", "with space", "-lead", 3])
def test_invalid_names_are_refused(name: object) -> None:
    with pytest.raises(PluginError, match="invalid relay name"):
        Registry("relay").add("p", name, object())  # type: ignore[arg-type]


def test_lazy_target_without_colon_is_refused() -> None:
    with pytest.raises(PluginError, match=r"package\.module:Attribute"):
        Registry("relay").add("p", "x", "module.Class")


def test_same_name_twice_names_both_plugins() -> None:
    registry = Registry("checksum")
    registry.add("first", "h", object())
    with pytest.raises(PluginConflictError, match="both plugin 'first' and plugin 'second'"):
        registry.add("second", "h", object())


def test_names_are_sorted_and_credited() -> None:
    registry = Registry("relay")
    registry.add("b", "zz", object())
    registry.add("a", "aa", object())
    assert registry.names() == ["aa", "zz"] and registry.by_plugin("a") == ["aa"]
    assert "aa" in registry and len(registry) == 2


def test_unknown_register_option_is_refused() -> None:
    with pytest.raises(PluginError, match="unknown option 'multi_path'"):
        Registry("relay").add("p", "x", object(), multi_path=True)
