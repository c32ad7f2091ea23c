"""knowd graphs."""
