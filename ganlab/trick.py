"""The base class of a trick: a plugin with a name, an options table and a switch in the TOML file."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from ganlab import hookimpl
from ganlab.options import parse_table

if TYPE_CHECKING:
    from ganlab.config import Config


@dataclasses.dataclass
class NoOptions:
    """A trick without options: its table takes only `enabled`."""


class Trick:
    """Subclass, set `name` and `Options` (a dataclass whose fields use `ganlab.opt`), implement hooks.

    A fresh instance is made for every run, so instance attributes are safe per-run state. `configure`
    is the place for checks that span several options.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self) -> None:
        self.options: Any = self.Options()

    @hookimpl
    def ganlab_configure(self, config: "Config", table: dict[str, Any]) -> None:
        self.options = parse_table(self.Options, table, f"tricks.{self.name}", config.origin)
        self.configure(config)

    def configure(self, config: "Config") -> None:
        """Called after the options were parsed; raise ganlab.ConfigError for a bad combination."""

    def __repr__(self) -> str:
        return f"<trick {self.name}>"
