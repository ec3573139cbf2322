"""Finding tricks and building a fresh plugin manager for each run.

Tricks come from three places, like pytest's plugins: the built-ins (the tuple below), installed
packages (entry-point group ``ganlab``; ``GANLAB_DISABLE_PLUGIN_AUTOLOAD=1`` turns them off) and local
files named in the TOML (``plugins = [...]``) or with ``--plugin``. A module offers every ``Trick``
subclass it defines. Two tricks of one name are an error naming both sources.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from ganlab import hookspecs
from ganlab.errors import ConfigError, PluginError
from ganlab.trick import Trick

if TYPE_CHECKING:
    from ganlab.config import Config

BUILTIN_TRICKS = (
    "ganlab_plugins.input_noise",
    "ganlab_plugins.soft_labels",
    "ganlab_plugins.batch_norm",
    "ganlab_plugins.activation",
    "ganlab_plugins.augment",
    "ganlab_plugins.ema",
    "ganlab_plugins.spectral_norm",
)
ENTRY_POINT_GROUP = "ganlab"
AUTOLOAD_ENV = "GANLAB_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class TrickSource:
    cls: type[Trick]
    origin: str  # "builtin", "entry point <dist>", or a file path

    @property
    def where(self) -> str:
        return f"{self.origin} ({inspect.getsourcefile(self.cls) or self.cls.__module__})"


def tricks_in(module: ModuleType) -> list[type[Trick]]:
    """The Trick subclasses a module defines (not those it imports)."""
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Trick) and obj is not Trick
            and obj.__module__ == module.__name__]


def import_file(path: str | os.PathLike) -> ModuleType:
    """Import a local plugin file under a private module name."""
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"plugin file not found: {path}")
    name = f"ganlab_local_{abs(hash(str(path.resolve()))):x}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(f"plugin file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def _add(found: dict[str, TrickSource], cls: type[Trick], origin: str) -> None:
    if not cls.name:
        raise PluginError(f"trick class {cls.__qualname__} from {origin} has no `name`")
    new = TrickSource(cls, origin)
    old = found.get(cls.name)
    if old is not None and old.cls is not cls:
        raise PluginError(f"two tricks are named {cls.name!r}: {old.where} and {new.where}")
    found[cls.name] = new


def available_tricks(plugin_files: list[str] = ()) -> dict[str, TrickSource]:
    """Every trick this run can name: built-ins, entry points (unless disabled), then local files."""
    found: dict[str, TrickSource] = {}
    for modname in BUILTIN_TRICKS:
        for cls in tricks_in(importlib.import_module(modname)):
            _add(found, cls, "builtin")
    if not os.environ.get(AUTOLOAD_ENV):
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:
                raise PluginError(f"entry point {ep.name} ({ep.value}) failed to load: {exc}") from exc
            classes = tricks_in(obj) if isinstance(obj, ModuleType) else [obj]
            dist = ep.dist.name if ep.dist else ep.value
            for cls in classes:
                _add(found, cls, f"entry point {dist}")
    for path in plugin_files:
        for cls in tricks_in(import_file(path)):
            _add(found, cls, str(path))
    return found


def resolve_trick_tables(config: "Config", tricks_raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate every [tricks.<name>] table with its trick; return them resolved (defaults filled in)."""
    known = available_tricks(config.plugins)
    resolved: dict[str, dict[str, Any]] = {}
    for name, table in tricks_raw.items():
        key = f"tricks.{name}"
        if name not in known:
            raise ConfigError(key, "unknown trick; known tricks are: " + ", ".join(sorted(known)),
                              config.origin(key))
        if not isinstance(table, dict):
            raise ConfigError(key, f"expected a table [{key}], got {table!r}", config.origin(key))
        table = dict(table)
        enabled = table.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{key}.enabled", f"expected true or false, got {enabled!r}",
                              config.origin(f"{key}.enabled"))
        trick = known[name].cls()
        trick.ganlab_configure(config=config, table=table)
        resolved[name] = {"enabled": enabled, **asdict(trick.options)}
    return resolved


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("ganlab")
    pm.add_hookspecs(hookspecs)
    return pm


def make_plugin_manager(config: "Config", extra: list[object] = ()) -> pluggy.PluginManager:
    """A fresh plugin manager holding the config's enabled tricks, configured, in TOML order.

    pluggy calls the last registered plugin first, so the tricks are registered in reverse TOML order.
    `extra` plugins (objects with hookimpls; tests, tools) are registered first, so they run last.
    """
    known = available_tricks(config.plugins)
    pm = new_plugin_manager()
    for plugin in extra:
        pm.register(plugin)
    tricks = []
    for name in config.enabled_tricks():
        trick = known[name].cls()
        tricks.append((trick, {k: v for k, v in config.tricks[name].items() if k != "enabled"}))
    for trick, _ in reversed(tricks):
        try:
            pm.register(trick, name=trick.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"trick {trick.name!r} ({known[trick.name].where}): {exc}") from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        source = known.get(getattr(exc.plugin, "name", ""), None)
        where = f" ({source.where})" if source else ""
        raise PluginError(f"{exc}{where}; see `ganlab plugins --hooks` for the hook names") from None
    for trick, table in tricks:
        others = [p for p in pm.get_plugins() if p is not trick]
        pm.subset_hook_caller("ganlab_configure", remove_plugins=others)(config=config, table=table)
    return pm


def hook_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if name.startswith("ganlab_"))
