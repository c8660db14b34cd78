"""Writes text straight to the protocol pipe (fd 1), as a careless C library might."""

import os

from tests.extensions.bad_nodes._base import PassThrough, builder


def _scribble() -> None:
    os.write(1, b"DEBUG: got here!!\n" * 4)


class Garbage(PassThrough):
    trigger = "garbage"
    misbehave = staticmethod(_scribble)


build = builder(Garbage)
