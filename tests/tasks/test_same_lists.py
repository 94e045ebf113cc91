"""List checksums compared across ranks (the gather replaced by rows of simulated ranks)."""
import pytest

from paddlevideo.tasks.same_lists import (
    ListMismatchError,
    _encode_row,
    check_same_lists,
    file_digest,
)


def _config(train, valid):
    return {"DATASET": {"train": {"file_path": str(train)}, "valid": {"file_path": str(valid)},
                        "test": {}}}


def _gather_with(other_rows):
    """A gather where this process is rank 0 and ``other_rows`` are ranks 1..n."""
    return lambda row: [row, *other_rows]


def test_same_content_passes(tmp_path):
    train, valid = tmp_path / "train.list", tmp_path / "val.list"
    train.write_text("a.mp4 0\nb.mp4 1\n")
    valid.write_text("c.mp4 0\n")
    twin = _encode_row([file_digest(str(train)), file_digest(str(valid))],
                       "rank 1/2 on node 1/2 (nodeB)")
    assert check_same_lists(_config(train, valid), gather=_gather_with([twin])) == 2


def test_differing_copy_names_rank_node_and_file(tmp_path):
    train, valid = tmp_path / "train.list", tmp_path / "val.list"
    train.write_text("a.mp4 0\nb.mp4 1\n")
    valid.write_text("c.mp4 0\n")
    stale = tmp_path / "stale.list"
    stale.write_text("a.mp4 0\n")
    other = _encode_row([file_digest(str(stale)), file_digest(str(valid))],
                        "rank 1/2 on node 1/2 (nodeB)")
    with pytest.raises(ListMismatchError) as err:
        check_same_lists(_config(train, valid), gather=_gather_with([other]))
    message = str(err.value)
    assert f"DATASET.train.file_path {train}: rank 1/2 on node 1/2 (nodeB) has sha256 " \
           f"{file_digest(str(stale)).hex()[:12]}, rank 0/1 on node 0/1" in message
    assert "DATASET.valid.file_path" not in message  # that one is the same everywhere


def test_missing_copy_is_reported(tmp_path):
    train, valid = tmp_path / "train.list", tmp_path / "val.list"
    train.write_text("a.mp4 0\n")
    valid.write_text("c.mp4 0\n")
    missing = _encode_row([None, file_digest(str(valid))], "rank 3/4 on node 1/2 (nodeB)")
    same = _encode_row([file_digest(str(train)), file_digest(str(valid))], "rank 1/4")
    with pytest.raises(ListMismatchError, match=r"train.list: rank 3/4 on node 1/2 \(nodeB\) "
                                                r"has missing, rank 0/1 .* has sha256"):
        check_same_lists(_config(train, valid), gather=_gather_with([same, same, missing]))


def test_single_process_without_gather_compares_nothing(tmp_path):
    train = tmp_path / "train.list"
    train.write_text("a.mp4 0\n")
    assert check_same_lists({"DATASET": {"train": {"file_path": str(train)}}}) == 1
