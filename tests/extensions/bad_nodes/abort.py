"""Dies of SIGABRT mid-call (what a segfaulting native extension looks like)."""

import os

from tests.extensions.bad_nodes._base import PassThrough, builder


class Abort(PassThrough):
    trigger = "abort"
    misbehave = staticmethod(os.abort)


build = builder(Abort)
