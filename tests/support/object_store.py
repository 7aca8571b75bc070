"""Faults of the stack's object store that a test can aim at one folder of one table: its POSIX
backend (versitygw) keeps an object as a file, so a folder it may not add files to is a store that
refuses exactly those writes while every read and every other write goes on."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.stack import StackOutputs


def backend_folder(stack: StackOutputs, bucket: str, key_prefix: str) -> Path:
    """The backend's folder holding the objects `<bucket>/<key_prefix>/...`; fails naming the fix when absent."""
    folder = stack.object_store_data / bucket / key_prefix.strip("/")
    if not folder.is_dir():
        pytest.fail(
            f"object-store: no folder {folder} for s3://{bucket}/{key_prefix} in its POSIX backend "
            f"(the stack runs the process runtime? run `make up`); log: {stack.log_of('object-store')}"
        )
    return folder


@contextmanager
def refusing_new_objects(stack: StackOutputs, bucket: str, key_prefix: str) -> Iterator[Path]:
    """While inside, the store refuses to create objects directly under `<bucket>/<key_prefix>/`.

    Root ignores permission bits, so as root the folder is made immutable (`chattr +i`); anyone
    else (the store runs as the test's user) takes away its write permission. Undone on the way out."""
    folder = backend_folder(stack, bucket, key_prefix)
    if os.geteuid() == 0:
        flagged = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True, check=False)
        if flagged.returncode != 0:
            pytest.fail(f"object-store: `chattr +i {folder}` failed ({flagged.stderr.strip()}): the state dir needs a filesystem with file attributes")
        try:
            yield folder
        finally:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=True)
    else:
        mode = folder.stat().st_mode
        folder.chmod(mode & ~0o222)
        try:
            yield folder
        finally:
            folder.chmod(mode)
