"""The serve stage."""
