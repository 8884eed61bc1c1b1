import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny ops: one torch thread is fastest and immune to a busy machine. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
