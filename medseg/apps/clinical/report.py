"""The case report: Markdown + a self-contained HTML page (slices embedded as base64 PNG).

Both are rendered from one list of blocks, so they always say the same thing. The slices are three
orthogonal planes through the tumour centroid, shown in the radiological convention (patient's right
on the viewer's left) after reorienting the arrays to RAS with the case affine, with the letters
R/L, A/P, S/I drawn on the image edges.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from medseg.utils.io import write_text_atomic

DISCLAIMER = ("**Research software, not a diagnosis.** This report was produced automatically by medseg from "
              "an image segmentation, an atlas region map reached by an automatic affine registration (or a "
              "coarse geometric map) and a database. It has not been reviewed by a clinician and must not be "
              "used to make clinical decisions.")

# (name, colour) of the displayed BraTS sub-regions
_LAYERS = (("oedema (WT - TC)", (0.2, 0.85, 0.2)), ("necrotic core (TC - ET)", (0.95, 0.2, 0.2)),
           ("enhancing (ET)", (1.0, 0.9, 0.1)))


def _to_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    import nibabel as nib

    return nib.orientations.apply_orientation(array, nib.io_orientation(affine))


def _layers(tumour: Mapping[str, np.ndarray | None]) -> list[np.ndarray]:
    wt, tc, et = tumour.get("WT"), tumour.get("TC"), tumour.get("ET")
    if wt is None:
        raise ValueError("the tumour layers need a whole-tumour mask (WT)")
    if tc is None or et is None:
        return [np.zeros_like(wt), wt, np.zeros_like(wt)]
    return [wt & ~tc, tc & ~et, et]


def plot_slices(background: np.ndarray | None, tumour: Mapping[str, np.ndarray | None], affine: np.ndarray,
                path: str | Path, title: str = "") -> Path:
    """Axial, coronal and sagittal slices through the tumour centroid with the tumour overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from medseg.report.plots import save_figure

    layers = [_to_ras(np.asarray(m, bool), affine) for m in _layers(tumour)]
    wt = np.logical_or.reduce(layers)
    bg = _to_ras(np.asarray(background, np.float32), affine) if background is not None else np.zeros(wt.shape, np.float32)
    zooms = _ras_zooms(affine)
    c = np.argwhere(wt).mean(axis=0).round().astype(int) if wt.any() else np.array(wt.shape) // 2
    lo, hi = np.percentile(bg[bg > 0], [1, 99]) if (bg > 0).any() else (0.0, 1.0)
    views = [("axial", lambda a: a[:, :, c[2]], ("R", "L", "A", "P"), (zooms[1], zooms[0])),
             ("coronal", lambda a: a[:, c[1], :], ("R", "L", "S", "I"), (zooms[2], zooms[0])),
             ("sagittal", lambda a: a[c[0], :, :], ("A", "P", "S", "I"), (zooms[2], zooms[1]))]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    for ax, (name, cut, (left, right, top, bottom), (zr, zc)) in zip(axes, views):
        # rows: second array axis (A or S) pointing up; columns flipped so R / A sit on the viewer's left
        def show(a, cut=cut):
            return cut(a).T[::-1, ::-1]
        ax.imshow(np.clip((show(bg) - lo) / (hi - lo + 1e-8), 0, 1), cmap="gray", aspect=zr / zc,
                  interpolation="nearest")
        rgba = np.zeros(show(wt).shape + (4,), np.float32)
        for layer, (_, colour) in zip(layers, _LAYERS):
            m = show(layer)
            rgba[m, :3], rgba[m, 3] = colour, 0.55
        ax.imshow(rgba, aspect=zr / zc, interpolation="nearest")
        for x, y, t in ((0.02, 0.5, left), (0.98, 0.5, right), (0.5, 0.97, top), (0.5, 0.03, bottom)):
            ax.text(x, y, t, transform=ax.transAxes, color="cyan", fontsize=11, ha="center", va="center",
                    fontweight="bold")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    fig.legend(handles=[Patch(color=col, label=n) for n, col in _LAYERS], loc="lower center", ncol=3, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))


def plot_registration(template: np.ndarray, t_affine: np.ndarray, registered: np.ndarray, path: str | Path,
                      title: str = "") -> Path:
    """The MNI template (axial, coronal, sagittal through its centre) with the outline of the case's brain
    carried into MNI space by the registration (red) and the template's brain outline (cyan)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from medseg.report.plots import save_figure

    bg = _to_ras(np.asarray(template, np.float32), t_affine)
    case = _to_ras(np.asarray(registered, bool), t_affine).astype(np.float32)
    brain = (bg > 0).astype(np.float32)
    c = np.array(bg.shape) // 2
    c[2] = int(round(c[2] * 1.1))
    views = [("axial", lambda a: a[:, :, c[2]]), ("coronal", lambda a: a[:, c[1], :]),
             ("sagittal", lambda a: a[c[0], :, :])]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    hi = float(np.percentile(bg[bg > 0], 99)) if (bg > 0).any() else 1.0
    for ax, (name, cut) in zip(axes, views):
        def show(a, cut=cut):
            return cut(a).T[::-1, ::-1]
        ax.imshow(np.clip(show(bg) / hi, 0, 1), cmap="gray", interpolation="nearest")
        ax.contour(show(brain), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.contour(show(case), levels=[0.5], colors="red", linewidths=0.9)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    fig.legend(handles=[Line2D([], [], color="cyan", label="MNI152 brain"),
                        Line2D([], [], color="red", label="case brain after registration")],
               loc="lower center", ncol=2, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))


def _ras_zooms(affine: np.ndarray) -> np.ndarray:
    """Voxel size along R, A, S after :func:`_to_ras` (the array axes permuted by the affine)."""
    import nibabel as nib

    col = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
    zooms = np.ones(3)
    for array_axis, (ras_axis, _) in enumerate(nib.io_orientation(affine)):
        zooms[int(ras_axis)] = col[array_axis]
    return zooms


# -------------------------------------------------------------------------------- rendering
def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def render_markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *args in blocks:
        if kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + args[0])
        elif kind == "p":
            out.append(args[0])
        elif kind == "warn":
            out.append("> " + args[0])
        elif kind == "img":
            out.append(f"![{args[1]}]({args[0].name})")
        elif kind == "table":
            head, rows = args
            esc = [[_fmt(c).replace("|", "\\|").replace("\n", " ") for c in r] for r in rows]
            out.append("\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                                 + ["| " + " | ".join(r) + " |" for r in esc]) if rows else "_none_")
    return "\n\n".join(out) + "\n"


def _md_inline(text: str) -> str:
    """HTML of a paragraph: escaped, with **bold** kept."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def render_html(blocks: list[tuple], title: str) -> str:
    body = []
    for kind, *args in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(args[0])}</{kind}>")
        elif kind in ("p", "warn"):
            body.append(f"<p class='{kind}'>{_md_inline(args[0])}</p>")
        elif kind == "img":
            data = base64.b64encode(Path(args[0]).read_bytes()).decode("ascii")
            body.append(f'<img alt="{html.escape(args[1])}" src="data:image/png;base64,{data}" style="max-width:100%">')
        elif kind == "table":
            head, rows = args
            if not rows:
                body.append("<p><em>none</em></p>")
                continue
            th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px}"
             "th{background:#eee}.warn{background:#fff3cd;border:1px solid #e0c36a;padding:8px}")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(out_dir: str | Path, blocks: list[tuple], title: str) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (atomically) into ``out_dir``."""
    out_dir = Path(out_dir)
    md = write_text_atomic(out_dir / "report.md", render_markdown(blocks))
    page = write_text_atomic(out_dir / "report.html", render_html(blocks, title))
    return md, page
