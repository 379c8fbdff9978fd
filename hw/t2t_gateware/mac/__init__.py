"""The MAC side of the card: per-port statistics of what arrives before any parsing."""
