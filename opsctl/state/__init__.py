"""The control node's own state directory: what opsctl cannot make again if it is lost."""
