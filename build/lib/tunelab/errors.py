"""User-facing errors.

A ``TunelabError`` is a mistake the user can fix (a missing file, a bad label, an impossible
freeze setting). The entry point prints its message alone — no stack trace — and exits with
code 2. Anything else is a bug and keeps its traceback.
"""


class TunelabError(Exception):
    """An error in the user's input or config; the message must say what is wrong and the fix."""


class DataError(TunelabError):
    """Bad data: missing file, column, label, empty text, wrong encoding, malformed line."""


class ConfigError(TunelabError):
    """A config value that cannot work (e.g. more layers than the model has)."""


class HubUnavailableError(TunelabError):
    """A model or dataset hub name was asked for but the hub cannot be reached."""
