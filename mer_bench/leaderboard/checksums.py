"""The published checksums of the standard datasets' files, to say on a board (and in `leaderboard check`) whether
its runs used the file everyone else uses.

Copied from `mer_bench.data.builtin.STANDARD_DATASETS` rather than imported: that module loads torch, which building
a site does not need. A test keeps the two equal. A dataset without a published checksum (CH-SIMS v2, third-party
datasets) and the synthetic data (generated, identified by its own checksum) are not compared.
"""

from __future__ import annotations

from typing import Any

PUBLISHED_SHA256 = {
    "mosi": "78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524",
    "mosei": "ad8b23d50557045e7d47959ce6c5b955d8d983f2979c7d9b7b9226f6dd6fec1f",
    "sims": "c9e20c13ec0454d98bb9c1e520e490c75146bfa2dfeeea78d84de047dbdd442f",
    "mosi-aligned": "d3994fd25681f9c7ad6e9c6596a6fe9b4beb85ff7d478ba978b124139002e5f9",
    "mosei-aligned": "45eccfb748a87c80ecab9bfac29582e7b1466bf6605ff29d3b338a75120bf791",
}


def checksum_problem(dataset: str, sha256: str) -> str | None:
    """Why a data file is not the published one; None when it is, or when there is nothing to compare with."""
    published = PUBLISHED_SHA256.get(dataset)
    if published is None or sha256 == published:
        return None
    return (f"the data file's sha256 {sha256[:12]}… differs from the published {dataset} file's {published[:12]}…: "
            "these runs used another file (re-exported, edited or a different release), so their numbers are not "
            "comparable with results on the published file")


def checksum_note(board: Any) -> dict[str, str] | None:
    """What the board page says about its data file: {"kind": "published" | "mismatch", "text"}; None when the
    dataset has no published checksum."""
    if board.dataset not in PUBLISHED_SHA256:
        return None
    problem = checksum_problem(board.dataset, board.sha256)
    if problem is None:
        return {"kind": "published", "text": f"the published {board.dataset} file (checksum matches)"}
    return {"kind": "mismatch", "text": f"Not the published file: {problem}."}
