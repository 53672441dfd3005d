"""What a report must say about the data behind a table: the ROI the metrics were computed in and
the fallbacks the reader took."""

from __future__ import annotations

from medseg.data.datamodule import SegmentationDataModule


def roi_note(dm: SegmentationDataModule, split: str) -> str | None:
    """A sentence naming the region the metrics of ``split`` were computed in, or ``None`` when they
    cover the whole image. The region is named from the reader (``roi_description``: the
    field-of-view mask of retinal readers, the brain mask of BraTS); ``data.fov=auto`` is a derived
    field of view; any other reader's ROI is "each case's region of interest"."""
    if not dm.use_roi or not any(c.roi is not None for c in dm.cases[split]):
        return None
    described = getattr(dm.reader, "roi_description", None)
    if described:
        return f"Metrics are computed inside each case's {described}."
    if dm.fov == "auto":
        return "Metrics are computed inside each image's field of view, derived from the image (`data.fov=auto`)."
    return "Metrics are computed inside each case's region of interest (the reader's ROI mask)."


def data_notes(dm: SegmentationDataModule) -> list[str]:
    """``split: note`` for every case whose reader took a fallback (e.g. a missing FOV mask estimated
    from the image), in any split."""
    return [f"{name}: {n}" for name, cases in dm.cases.items() for c in cases
            if (n := (getattr(c, "meta", None) or {}).get("data_note"))]
