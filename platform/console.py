"""What neurocomm tells its user: the ``neurocomm`` logger, progress bars, other libraries' noise.

Everything the CLI prints goes through :data:`LOGGER` (stdlib ``logging``): information on
stdout, warnings and errors on stderr, as one plain line each. ``neurocomm -q`` shows warnings
and errors only, ``-v`` adds debug lines (among them the start-up notices of Ray and MLflow,
which are routed here instead of being printed by those libraries). Used as a library,
neurocomm installs no handler: its information lines stay silent unless the application
configures logging, and its warnings reach stderr through Python's last-resort handler.

Progress bars (tqdm) are drawn on a terminal or in a notebook (``tqdm.auto`` picks the
widget there), never into a file or a CI log, where a bar redrawn every fraction of a second
would be noise; the end-of-run lines say the same once. Set the ``neurocomm`` logger above
INFO (what ``-q`` does) to hide them from Python as well.
"""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

LOGGER = logging.getLogger("neurocomm")
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def say(msg: str) -> None:
    LOGGER.info(msg)


def warn(msg: str) -> None:
    LOGGER.warning(f"neurocomm: warning: {msg}")


class ConsoleHandler(logging.Handler):
    """Information to stdout, warnings and errors to stderr, each looked up when a record is
    written (a test's capture replaces them), through ``tqdm.write`` so that a progress bar on
    the same terminal is redrawn below the line instead of being cut by it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            tqdm.write(self.format(record), file=stream)
            stream.flush()
        except Exception:  # noqa: BLE001 - logging never raises into the caller
            self.handleError(record)


def configure(verbosity: int = 0) -> None:
    """The CLI's output: -1 quiet (warnings and errors), 0 normal, 1 verbose (debug).
    Called once per command; calling it again replaces the handler it installed before."""
    for handler in list(LOGGER.handlers):
        if isinstance(handler, ConsoleHandler):
            LOGGER.removeHandler(handler)
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(LEVELS[max(-1, min(1, verbosity))])
    LOGGER.propagate = False


def in_notebook() -> bool:
    """Whether ``tqdm.auto`` chose its notebook widget (a Jupyter kernel with ipywidgets)."""
    from tqdm.auto import tqdm as auto_tqdm

    return any(cls.__module__ == "tqdm.notebook" for cls in auto_tqdm.__mro__)


def show_progress() -> bool:
    """Whether to draw progress bars here (see the module's docstring)."""
    if LOGGER.level > logging.INFO:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return in_notebook() or bool(isatty and isatty())


class _ToDebugLog(logging.Filter):
    """Takes a library's records below ``below`` off its own handlers and writes them to the
    neurocomm log at debug level, named after where they came from."""

    def __init__(self, below: int) -> None:
        super().__init__()
        self.below = below

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.below:
            return True
        LOGGER.debug(f"[{record.name}] {record.getMessage()}")
        return False


def route_to_debug_log(logger_name: str, below: int = logging.ERROR) -> None:
    """Route what ``logger_name`` itself logs below ``below`` to the neurocomm debug log
    (once per logger; a logger's filters see only the records it creates)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _ToDebugLog) for f in logger.filters):
        logger.addFilter(_ToDebugLog(below))
