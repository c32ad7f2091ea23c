"""knowd stores."""
