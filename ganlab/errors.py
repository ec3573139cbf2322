"""Errors a user can cause. The CLI prints them as one line and exits with code 2; anything else is a bug."""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (config, data, plugin file): one clear message, exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """A bad config value: names the file and the dotted key, says what is allowed."""

    def __init__(self, key: str, message: str, file: str | None = None):
        self.key, self.message, self.file = key, message, file
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{key}: {message}")


class DataError(UserError):
    """Missing or unusable data, with what to do about it."""


class PluginError(UserError):
    """A plugin that cannot load, clashes with another, or raised inside a hook."""
