"""The one exception type a user can cause; the CLI turns it into one sentence."""


class InitoptError(Exception):
    """A problem with the user's input, files or environment (not a bug)."""


class DataError(InitoptError):
    """Missing, corrupt or unreachable dataset files."""


class ConfigError(InitoptError):
    """An unknown name, a wrong type or an impossible value in a configuration."""
