"""The command line, paused at one event so that a test can kill the process exactly there.

    python tests/pausing_cli.py <event>:<n>:<marker file> --model=... [any run_recbole_sigma.py flag]

The n-th <event> of the process creates <marker file> (holding the pid) and sleeps. Events:
``epoch``: the start of a training epoch, after the previous epoch's checkpoints are saved
(RecBole's ``Trainer._train_epoch``, which the reliable trainer calls once they are);
``save-last`` / ``save-best``: inside the atomic write of that checkpoint, after part of its
temporary file is written and before it replaces the checkpoint (``torch.save`` into
``<name>-last.pth.tmp`` / ``-best.pth.tmp``).
"""
import os
import sys
import time


def pause(marker):
    with open(marker + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(marker + ".tmp", marker)  # the test sees the marker only with the pid in it
    while True:
        time.sleep(60)


class PausingWriter:
    """A file wrapper that pauses after its first write."""

    def __init__(self, f, marker):
        self._f, self._marker = f, marker

    def write(self, data):
        n = self._f.write(data)
        self._f.flush()
        pause(self._marker)
        return n

    def flush(self):
        self._f.flush()


def pause_at(event, count, marker):
    """Patch the trainer's path so that the ``count``-th ``event`` pauses."""
    import torch
    from recbole.trainer import Trainer

    seen = [0]

    def due():
        seen[0] += 1
        return seen[0] == count

    if event == "epoch":
        train_epoch = Trainer._train_epoch

        def paused_train_epoch(self, *args, **kwargs):
            if due():
                pause(marker)
            return train_epoch(self, *args, **kwargs)

        Trainer._train_epoch = paused_train_epoch
    elif event in ("save-last", "save-best"):
        save, suffix = torch.save, f"-{event[len('save-'):]}.pth.tmp"

        def paused_save(obj, f, *args, **kwargs):
            if str(getattr(f, "name", "")).endswith(suffix) and due():
                f = PausingWriter(f, marker)
            return save(obj, f, *args, **kwargs)

        torch.save = paused_save
    else:
        raise SystemExit(f"unknown event {event!r}: expected epoch, save-last or save-best")


if __name__ == "__main__":
    event, n, marker_file = sys.argv[1].split(":", 2)
    pause_at(event, int(n), marker_file)
    from recbole_sigma.cli import main

    sys.argv[1:] = sys.argv[2:]  # RecBole reads sys.argv too: the flags as run_recbole_sigma.py gets them
    sys.exit(main())
