"""The `loc3r` command line: one module per command group, heavy imports inside handlers."""
