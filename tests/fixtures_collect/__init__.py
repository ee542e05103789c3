"""Test fixtures for the collect stage: images of every awkward kind and a local fake webshop + Wayback."""
