"""Misbehaving extension nodes, imported by worker processes as plain modules.

Each module's ``build(config)`` returns a node factory. A node passes
transcripts through and misbehaves only on a transcript containing its own
trigger word (the module name), so the same worker also serves good calls.
"""
