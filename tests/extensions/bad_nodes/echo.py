"""A well-behaved trivial node (the control case and the benchmark's node)."""

from tests.extensions.bad_nodes._base import PassThrough, builder

build = builder(PassThrough)
