"""The spool's fsync helper: a tiny process next to each worker that fdatasyncs its click spool
on request, so that waiting for the disk never needs the worker's GIL.

Run by `ClickSpool` as `python -I .../spool_sync.py` (it needs the standard library only).
Each request on stdin is a file's path ended by a NUL byte (no path holds one): sync that file.
The answer on stdout is one byte, `1` once an fdatasync covering everything written to the file
before the request returned, `0` if it failed. It ends when stdin closes, so it never outlives
its worker, and it ignores stop signals, which reach it with its worker's (see the end).

Why a process: with an fsync thread, the thread needed the GIL to learn that clicks wait and
again to report the fsync done, and a busy event loop gives the GIL up only when it idles, so
each group commit left the loop idle for a while. Measured under keep-alive load: the loop
82 % -> 89 % busy, 60 -> 53 us of its CPU per click.
"""

from __future__ import annotations

import os
import signal
import sys


def serve(requests: int, answers: int) -> None:
    fd, current, rest = -1, b"", b""
    while chunk := os.read(requests, 65536):
        *paths, rest = (rest + chunk).split(b"\0")
        for path in paths:
            if path != current:  # the worker started a new spool file
                if fd >= 0:
                    os.close(fd)
                fd, current = _open(path), path
            os.write(answers, _sync(fd))


def _open(path: bytes) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return -1  # its syncs fail: the clicks are refused, not acknowledged


def _sync(fd: int) -> bytes:
    try:
        os.fdatasync(fd)
    except OSError:
        return b"0"
    return b"1"


if __name__ == "__main__":
    # A stop signal goes to the whole process group (Ctrl-C, systemd): the worker then still
    # answers its last clicks, so this helper stays until the worker closes its input.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.fileno(), sys.stdout.fileno())
