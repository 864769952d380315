"""Typed name → object registries (after timm's and lm-evaluation-harness' registries).

One registry per kind (methods and baselines share one; datasets have their
own). A decorator registers; a duplicate name raises; an unknown name raises
with the list of known names and a close-match suggestion.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from mmerbench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        # Called once before the first lookup, so that modules which register
        # themselves on import are imported lazily (keeps CLI start-up fast).
        self._loader = loader
        self._loaded = loader is None

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        self._ensure_loaded()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"Unknown {self.kind} {name!r}.{hint} Known: {', '.join(names)}."

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _import_methods() -> None:
    # Every public module of the two packages registers what it defines on import.
    import importlib
    import pkgutil

    for pkg_name in ("mmerbench.baselines", "mmerbench.methods"):
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_") and info.name != "base":
                importlib.import_module(f"{pkg_name}.{info.name}")


#: Methods and baselines share one registry: one list of names for the CLI.
METHODS: Registry[type] = Registry("method", loader=_import_methods)


def register(name: str):
    """Class decorator: ``@register("tailor")`` adds the class to METHODS under `name`."""

    def deco(cls: type) -> type:
        cls.name = name
        METHODS.add(name, cls)
        return cls

    return deco


def get_method(name: str) -> type:
    return METHODS.get(name)


def list_methods() -> list[str]:
    return METHODS.names()
