import pytest

from medseg.data.splits import grouped_holdout, grouped_kfold, make_splits

IDS = [f"ID{p:03d}_{side}" for p in range(10) for side in "LR"]


def group(cid: str) -> str:
    return cid.split("_")[0]


def test_kfold_partitions_and_never_splits_groups():
    folds = grouped_kfold(IDS, 5, seed=0, group_of=group)
    assert sorted(c for f in folds for c in f) == sorted(IDS)
    assert all(len(f) == 4 for f in folds)
    owner = {}
    for k, f in enumerate(folds):
        for c in f:
            assert owner.setdefault(group(c), k) == k


def test_kfold_deterministic_and_seed_dependent():
    assert grouped_kfold(IDS, 5, 1, group) == grouped_kfold(IDS, 5, 1, group)
    assert grouped_kfold(IDS, 5, 1, group) != grouped_kfold(IDS, 5, 2, group)


def test_holdout_grouped():
    rest, held = grouped_holdout(IDS, 0.3, seed=0, group_of=group)
    assert len(held) == 6 and not {group(c) for c in held} & {group(c) for c in rest}


def test_make_splits_uses_dataset_test_split_and_folds():
    s = make_splits(IDS, ["T1", "T2"], val_fraction=0.2, test_fraction=0.25, seed=0, fold=2, n_folds=5,
                    group_of=group)
    assert s["test"] == ["T1", "T2"]
    assert len(s["val"]) == 4 and not set(s["val"]) & set(s["train"])
    assert sorted(s["train"] + s["val"]) == sorted(IDS)


def test_make_splits_carves_test_when_missing():
    s = make_splits(IDS, None, val_fraction=0.2, test_fraction=0.25, seed=0, group_of=group)
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(IDS)
    assert len(s["test"]) >= 4


def test_val_fraction_zero_trains_on_the_whole_pool(tiny_drive):
    s = make_splits(IDS, ["T1"], val_fraction=0, test_fraction=0.25, seed=0, group_of=group)
    assert s == {"train": sorted(IDS), "val": [], "test": ["T1"]}
    # a splits file without a val list: no validation images either
    from medseg.data.datamodule import SegmentationDataModule
    from medseg.data.formats.drive import DriveReader

    dm = SegmentationDataModule(root=str(tiny_drive), reader=DriveReader, val_fraction=0,
                                splits={"train": ["21_training", "22_training"], "test": ["01_test"]})
    dm.setup()
    assert dm.splits == {"train": ["21_training", "22_training"], "val": [], "test": ["01_test"]}
    assert len(dm.val_dataloader()) == 0


def test_bad_fold():
    with pytest.raises(ValueError, match="data.fold=5 is outside 0..4"):
        make_splits(IDS, None, val_fraction=0.2, test_fraction=0.25, seed=0, fold=5, n_folds=5)


def test_datamodule_fixed_splits_from_file(tiny_drive, tmp_path):
    import json

    from medseg.data.case import DataError
    from medseg.data.datamodule import SegmentationDataModule
    from medseg.data.formats.drive import DriveReader

    spec = {"train": ["21_training", "22_training"], "val": ["23_training"], "test": ["01_test"]}
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(spec))
    dm = SegmentationDataModule(root=str(tiny_drive), reader=DriveReader, splits=str(path))
    dm.setup()
    assert dm.splits == spec and [c.case_id for c in dm.cases["val"]] == ["23_training"]
    path.write_text(json.dumps({**spec, "val": ["99_training"]}))
    with pytest.raises(DataError, match=r"splits.json: case ids not in .*99_training"):
        SegmentationDataModule(root=str(tiny_drive), reader=DriveReader, splits=str(path)).setup()
    # no test list: the dataset's own labelled test split is the test set
    dm = SegmentationDataModule(root=str(tiny_drive), reader=DriveReader, splits={"train": ["21_training"],
                                                                                 "val": ["22_training"]})
    dm.setup()
    assert dm.splits["test"] == ["01_test", "02_test"]
