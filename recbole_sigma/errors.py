"""The package's user-facing errors: each message is one line that says what to change."""


class RecBoleSigmaError(Exception):
    """Base of every error the command line reports as ``error: ...`` instead of a traceback."""


class ConfigError(RecBoleSigmaError, ValueError):
    """A config key or file no model could be built from."""


class UnknownModelError(RecBoleSigmaError, ValueError):
    """A model name that is neither ours nor RecBole's."""


class DatasetNotFoundError(RecBoleSigmaError, FileNotFoundError):
    """A dataset that is neither on disk nor downloadable."""


class EmptyDatasetError(RecBoleSigmaError, ValueError):
    """A dataset that filtering leaves without interactions."""
