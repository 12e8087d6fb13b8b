"""Index a folder and SIGKILL this process right after the first group is committed (crash test)."""

from __future__ import annotations

import os
import signal
import sys

from ragpipe.config import load_settings
from ragpipe.ingest import index_folder
from ragpipe.ingest.testing import HashingEmbedder


def main(docs: str, kill_after_writes: int) -> None:
    writes = 0

    def on_progress(event) -> None:
        nonlocal writes
        if event.phase == "write":
            writes += 1
            if writes >= kill_after_writes:
                os.kill(os.getpid(), signal.SIGKILL)

    settings = load_settings(chunking__chunk_tokens=40, chunking__overlap_tokens=8)
    index_folder(docs, settings, embedder=HashingEmbedder(), progress=on_progress, group_chunks=6)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
