"""ganlab: a plugin-based ablation framework for GANs.

Write a trick by subclassing :class:`Trick` and decorating methods with :data:`hookimpl`;
the hooks it may implement are documented in :mod:`ganlab.hookspecs`.
"""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ganlab")

from ganlab.errors import ConfigError, UserError  # noqa: E402
from ganlab.options import opt  # noqa: E402
from ganlab.state import TrainState  # noqa: E402
from ganlab.trick import Trick  # noqa: E402

__all__ = ["hookimpl", "Trick", "TrainState", "opt", "ConfigError", "UserError", "__version__"]
