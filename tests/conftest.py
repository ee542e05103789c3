"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: the suite runs in parallel workers on 2 shared cores, where OpenMP's
    busy-waiting threads slow each other down several-fold. Tiny test models gain nothing from more threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
