"""The operator documents' blocks work as written: tests/test_docs_literal.py's check, in a module
of its own (its own reader's terminal) so that `make test`'s workers run both halves at once."""

from __future__ import annotations

import pytest

from tests.support.doc_blocks import Block, Terminal
from tests.test_docs_literal import OPERATOR_DOCS, blocks_of, run_block, terminal  # noqa: F401  # the module's own terminal

OPERATOR_BLOCKS = blocks_of(OPERATOR_DOCS, inside=True)


def test_every_operator_document_has_blocks():
    assert {b.doc for b in OPERATOR_BLOCKS} == set(OPERATOR_DOCS)


@pytest.mark.parametrize("block", OPERATOR_BLOCKS, ids=lambda b: b.id)
def test_block_works_as_written(block: Block, terminal: Terminal):  # noqa: F811
    run_block(block, terminal)
