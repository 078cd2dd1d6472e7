"""The C extensions are built where the tests run in CI: a test of one that is skipped because it
is missing would otherwise pass CI unnoticed (locally, an editable install without a compiler
still runs the Python paths)."""

from __future__ import annotations

import os

import pytest

from loadgen import native
from sink import fast


@pytest.mark.skipif(not os.environ.get("CI"), reason="CI only: a missing build fails it there")
def test_both_c_extensions_are_built_in_ci():
    assert native.AVAILABLE, "loadgen._ledger is not built: pip install -e . needs a C compiler"
    assert fast.AVAILABLE, "sink._fast is not built: pip install -e . needs a C compiler"
