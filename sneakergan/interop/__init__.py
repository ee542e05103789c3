"""Interoperability with the reference implementation's files."""
