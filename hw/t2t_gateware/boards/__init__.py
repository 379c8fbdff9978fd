"""Board shells: what wraps the top level to build a bitstream for a board."""
