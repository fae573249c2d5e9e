"""The one exception type users see: a message that says what is wrong and what to do."""


class NeuropruneError(Exception):
    """Bad input or a missing resource, explained for the user.

    The CLI prints the message on one line and exits with status 2 instead of a traceback.
    """


class DatasetError(NeuropruneError):
    """A data set is missing, unknown, truncated or corrupt."""


class ConfigError(NeuropruneError):
    """An option or configuration value is invalid."""


class ModelError(NeuropruneError):
    """An unknown model name, or a model or checkpoint that does not fit."""
