"""Allocates without bound (touching every page, as a real leak would)."""

from tests.extensions.bad_nodes._base import PassThrough, builder


def _allocate() -> None:
    hoard = []
    while True:
        hoard.append(bytearray(16 << 20))


class Hog(PassThrough):
    trigger = "hog"
    misbehave = staticmethod(_allocate)


build = builder(Hog)
