"""A hostile extension: tries to leave its sandbox, one attempt per call."""
