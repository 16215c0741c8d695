"""Parallel gzip: a valid gzip member whose bytes do not depend on the threads."""

from __future__ import annotations

import gzip
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from zlib_ng import zlib_ng

from tasks.pgzip import BLOCK_SIZE, gzip_blocks


def _packed(data: bytes, threads: int, level: int = 6) -> bytes:
    blocks = [data[i : i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE)]
    with ThreadPoolExecutor(threads) as pool:
        return b"".join(gzip_blocks(blocks, level, pool, ahead=threads + 1))


# Compressible text and incompressible noise, across block boundaries.
_DATA = b"freshflow layer " * 200_000 + os.urandom(BLOCK_SIZE + 12_345)


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_unpacks_to_the_input(threads: int) -> None:
    assert gzip.decompress(_packed(_DATA, threads)) == _DATA


def test_bytes_do_not_depend_on_the_thread_count() -> None:
    assert _packed(_DATA, 1) == _packed(_DATA, 4)


def test_empty_input_is_an_empty_gzip_member() -> None:
    packed = _packed(b"", 2)
    assert gzip.decompress(packed) == b""


def test_header_has_no_name_and_no_time() -> None:
    packed = _packed(b"abc", 1)
    assert packed[3] == 0  # no FNAME or other flag
    assert packed[4:8] == b"\0\0\0\0"  # mtime 0


def test_compresses_as_well_as_one_stream_within_a_percent() -> None:
    text = b"".join(b"line %d of a log file\n" % i for i in range(400_000))
    single = zlib_ng.compressobj(6, zlib_ng.DEFLATED, 31)
    whole = single.compress(text) + single.flush()
    assert len(_packed(text, 3)) <= len(whole) * 1.01
