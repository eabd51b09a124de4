"""The one error family: every exception sedc raises on purpose is a :class:`SedcError`.

A caller can catch everything sedc reports with one ``except sedc.SedcError``. Each class also
keeps the built-in base that fits it, so code written against the built-ins still works
(``except ValueError`` catches an :class:`InputError`, ``except ConnectionError`` a
:class:`RayConnectError`).

======================  ==============================  ==============================================
class                   built-in base                   raised for
======================  ==============================  ==============================================
InputError              ValueError                      an argument with a wrong value (image, option…)
InputTypeError          TypeError                       an argument of a wrong type
ImageError              —                               one image of a many-image run that failed
ImageLoadError          ValueError                      an image file that cannot be read
ModelFileNotFoundError  FileNotFoundError, ValueError   a model or label file that is not there
ModelUnavailableError   ValueError                      a library model that cannot be loaded here
ExportError             RuntimeError                    a model ONNX Runtime cannot run
MissingDependencyError  ImportError                     an optional package that is not installed
OutOfMemoryError        MemoryError                     a batch of one image that does not fit
SearchStateError        RuntimeError                    a search state machine driven out of order
WorkerError             RuntimeError                    a worker process or Ray actor that cannot start
RayConnectError         ConnectionError                 a Ray cluster that cannot be joined
RayClusterError         RuntimeError                    a Ray cluster that can no longer run the work
UsageError              —                               a command line that cannot be run (exit 2)
======================  ==============================  ==============================================
"""

from __future__ import annotations

from pathlib import Path


class SedcError(Exception):
    """Base class of every exception sedc raises on purpose."""


class InputError(SedcError, ValueError):
    """An argument with a value sedc cannot use; the message names it and what is allowed."""


class InputTypeError(SedcError, TypeError):
    """An argument of a type sedc cannot use; the message names it and what is allowed."""


class ImageLoadError(SedcError, ValueError):
    """An image file that cannot be read.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    reason : str
        Why, in one line (missing, unreadable, not an image, ...).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot load image '{path}': {reason}")


class ModelFileNotFoundError(SedcError, FileNotFoundError, ValueError):
    """A model, weights or labels file that does not exist."""


class ModelUnavailableError(SedcError, ValueError):
    """A library model (torchvision, timm, Hugging Face) that cannot be loaded here."""


class ExportError(SedcError, RuntimeError):
    """A model that cannot be exported to ONNX or run on ONNX Runtime."""


class MissingDependencyError(SedcError, ImportError):
    """An optional dependency that is not installed; the message says what to install."""


class OutOfMemoryError(SedcError, MemoryError):
    """The model ran out of device memory on a batch of one image."""


class SearchStateError(SedcError, RuntimeError):
    """A search state machine fed scores it did not ask for (a driver bug, not a user error)."""


class ImageError(SedcError):
    """An image of a many-image run that could not be explained.

    With ``on_error="raise"``, every backend of :func:`sedc.explain_many` raises this type for a
    failed image (the original exception, where there is one in this process, is its
    ``__cause__`` and its ``error``); with ``on_error="return"`` it is yielded in the image's place.

    Attributes
    ----------
    index : int
        Position of the image in the input.
    message : str
        What went wrong, in one line.
    kind : str
        ``"error"``, or ``"worker-died"`` when a worker process or Ray actor died holding it and
        the recovery rule gave it up (:mod:`sedc.scale.recovery`).
    error : BaseException or None
        The original exception, when it was raised in this process.
    """

    def __init__(self, index: int, message: str, kind: str = "error",
                 error: BaseException | None = None) -> None:
        super().__init__(index, message, kind)
        self.index, self.message, self.kind, self.error = index, message, kind, error

    def __str__(self) -> str:
        return f"image {self.index}: {self.message}"

    @classmethod
    def from_exception(cls, index: int, err: BaseException) -> "ImageError":
        """An ImageError for ``err`` raised while explaining image ``index``."""
        if isinstance(err, ImageError):
            return err
        text = str(err).strip()
        message = f"{type(err).__name__}: {text}" if text else type(err).__name__
        return cls(index, message, error=err)


class WorkerError(SedcError, RuntimeError):
    """A worker process or Ray actor that cannot start (it cannot build the model, or keeps dying
    before it is ready): a failure of the whole run, not of its images."""


class RayConnectError(SedcError, ConnectionError):
    """A Ray cluster that cannot be joined.

    Attributes
    ----------
    address : str
        The address as given.
    cause : str
        ``refused``, ``timeout``, ``unreachable``, ``unknown host``, ``auth``, ``not a Ray GCS``,
        ``not a Ray Client server``, ``no cluster found`` or ``error``.
    detail : str
        What was seen, in one line.
    """

    def __init__(self, address: str, cause: str, detail: str) -> None:
        self.address, self.cause, self.detail = address, cause, detail
        super().__init__(f"cannot connect to Ray at {address}: {cause} ({detail})")


class RayClusterError(SedcError, RuntimeError):
    """The cluster can no longer run the work (no actor could start for a long time): a failure
    of the whole run, not of its images."""


class UsageError(SedcError):
    """A command line that cannot be run as given: reported in one line, with exit status 2."""
