"""The edit stage."""
