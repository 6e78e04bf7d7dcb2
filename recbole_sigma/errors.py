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


class NonFiniteLossError(RecBoleSigmaError, FloatingPointError):
    """A NaN or infinite training loss (or weights): training stops before anything is saved.

    ``epoch`` and ``batch`` (0-based) say where; both are None for weights found non-finite."""

    def __init__(self, message, epoch=None, batch=None):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch


class CheckpointError(RecBoleSigmaError, RuntimeError):
    """A checkpoint that cannot be resumed from: unreadable, or for another model or dataset."""


class MambaKernelsUnavailable(RecBoleSigmaError, RuntimeError):
    """``mamba_backend: cuda`` where mamba-ssm's CUDA kernels cannot run (missing, an incompatible
    mamba-ssm / causal-conv1d pair, a CPU input, or a block they cannot serve)."""


class PortInUseError(RecBoleSigmaError, OSError):
    """A DDP run (``nproc`` > 1) whose ``port``, rank 0's address, another program already listens on."""


class DataFileError(RecBoleSigmaError, ValueError):
    """An atomic file (.inter, .user, .item) RecBole would misread: the message names the file and line."""
