"""How a job ends early: stopped by the user or the system (SIGINT/SIGTERM), or requeued by SLURM.

A job stopped by Ctrl-C or ``kill`` is neither failed nor finished: its results.json says
``interrupted`` (with the signal), the sweep prints its summary line, and the process exits
128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell expects of a process a
signal ended. ``resume=auto`` then continues it from its last checkpoint.

Why a handler of our own: Python's SIGINT handler raises ``KeyboardInterrupt``, which Lightning
turns into ``sys.exit(1)`` (``_call_and_handle_interrupt``), so the job looked failed with
``SystemExit: 1``; and SIGTERM only sets Lightning's ``received_sigterm`` flag, which the fit
loop reads between steps (not at all while data is tokenised or a model loads), so a loaded
machine took more than 20 s to stop. :func:`install` makes both signals raise
:class:`Interrupted` at once, wherever the main thread is; the job records whatever signal
:func:`received` names, whatever exception reached it (Lightning's ``SystemExit`` included).

:class:`Interrupted` is a ``KeyboardInterrupt``: libraries treat it as Ctrl-C (Lightning's
graceful shutdown, DataLoader workers exit quietly). Under SLURM, submitit owns SIGTERM (its
handler bypasses the SIGTERM that comes with a requeue), so it is left alone there; the
requeue itself is :mod:`tunelab.ops.preempt`'s, and a requeued job is not interrupted: it
stays ``running`` (:func:`requeued`).

A signal can land where its exception cannot propagate: inside a callback that C or Rust code
made into Python (``tokenizers`` converting a token while the tokenizer loads), or in a
``__del__``. Python then prints "Exception ignored in: ..." and carries on, so a Ctrl-C at the
wrong moment was lost: the sweep ran to its end and exited 0. Such exceptions reach
``sys.unraisablehook``; :func:`install` adds a hook that delivers the signal again a moment
later, where it can stop the job (as for a signal that lands inside an ``import``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# What each signal usually means, for the record and the message.
MEANING = {"SIGINT": "Ctrl-C", "SIGTERM": "kill or a scheduler stopping the job"}

_received: Optional[int] = None
_requeue_started = False


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGINT or SIGTERM arrives (see module doc)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _in_import(frame) -> bool:
    """Is the main thread inside an ``import`` (importlib's frames on its stack)?"""
    while frame is not None:
        if "importlib._bootstrap" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _deliver_again(signum: int) -> None:
    threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()


def _raise(signum, frame) -> None:
    global _received
    _received = signum
    if _in_import(frame):
        # An exception raised half-way through importing a module (numpy's lazy attributes,
        # scipy's submodules) leaves it broken in sys.modules, and the job's own clean-up then
        # fails on it. So the signal is delivered again a moment later, after the import.
        _deliver_again(signum)
        return
    raise Interrupted(signum)


def _unraisable(args) -> None:
    """``sys.unraisablehook``: an :class:`Interrupted` that was swallowed is delivered again."""
    if isinstance(args.exc_value, Interrupted):
        _deliver_again(args.exc_value.signum)
        return
    _previous_hook(args)


_previous_hook = sys.__unraisablehook__  # what any other unraisable exception goes to (install)


def _owned_by_submitit(handler) -> bool:
    owner = getattr(handler, "__self__", None)
    return owner is not None and type(owner).__module__.startswith("submitit")


def install() -> None:
    """SIGINT and SIGTERM raise :class:`Interrupted` in this process (main thread only; SIGTERM
    stays submitit's where submitit handles it)."""
    if threading.current_thread() is not threading.main_thread():
        return
    global _previous_hook
    if sys.unraisablehook is not _unraisable:
        _previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    for sig in SIGNALS:
        if sig == signal.SIGTERM and _owned_by_submitit(signal.getsignal(sig)):
            continue
        signal.signal(sig, _raise)


def reset() -> None:
    """Forget a signal of an earlier job (a sweep runs its jobs in one process)."""
    global _received
    _received = None


def received() -> Optional[str]:
    """The name of the signal that stopped this job (``SIGINT``), or None."""
    return signal.Signals(_received).name if _received is not None else None


def exit_code() -> int:
    """128 + the signal's number: what a shell reports for a process a signal ended."""
    return 128 + int(_received or signal.SIGINT)


def describe(name: str) -> str:
    return f"{name} ({MEANING.get(name, 'a signal')})"


def mark_requeue_started() -> None:
    """Called by :mod:`tunelab.ops.preempt` just before submitit requeues the job and exits."""
    global _requeue_started
    _requeue_started = True


def requeued(exc: BaseException) -> bool:
    """True when ``exc`` is the exit submitit makes after requeueing this job."""
    return _requeue_started and isinstance(exc, SystemExit)
