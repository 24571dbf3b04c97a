"""Task machinery shared by the tracking and delta tasks: reward terms declared as data."""
