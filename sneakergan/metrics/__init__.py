"""The metrics stage."""
