"""Loops forever, burning CPU, never yielding."""

from tests.extensions.bad_nodes._base import PassThrough, builder


def _forever() -> None:
    n = 0
    while True:
        n += 1


class Spin(PassThrough):
    trigger = "spin"
    misbehave = staticmethod(_forever)


build = builder(Spin)
