"""Generate the application icon files from ``resources/icons/app.svg``, and preview every icon.

Run ``python tools/make_icons.py`` after editing ``app.svg``: it writes ``app.png`` (512 px, the window icon on
systems that do not take SVG), ``app.ico`` (Windows: 16–256 px, each size rendered from the SVG rather than
scaled down from one bitmap, so small sizes stay crisp) and ``app.icns`` (macOS: 16–1024 px). The generated
files are committed, so building needs neither Pillow nor this script.

``--preview PATH`` draws every SVG in ``resources/icons/`` at 1x and 2x on a light and a dark background into one
PNG, to look at them the way staff will see them in a light or dark palette and at 200 % scale.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
ICO_SIZES = (16, 20, 24, 32, 40, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)
PNG_SIZE = 512
LIGHT = QColor("#f5f5f5")
DARK = QColor("#2b2b2b")


def ensure_gui() -> QGuiApplication:
    """A QGuiApplication (offscreen when there is no display), needed before painting."""
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication):
        return app
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return QGuiApplication(sys.argv[:1])


def render_svg(path: Path, pixels: int) -> QImage:
    """``path`` drawn into a transparent square image ``pixels`` wide.

    Raises:
        ValueError: the file is not a valid SVG.
    """
    ensure_gui()
    renderer = QSvgRenderer(str(path))
    if not renderer.isValid():
        raise ValueError(f"{path} is not a valid SVG")
    image = QImage(pixels, pixels, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, pixels, pixels))
    painter.end()
    return image


def png_bytes(image: QImage) -> bytes:
    """``image`` encoded as PNG."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(buffer.data().data())


def write_app_icons(svg: Path = ICONS / "app.svg", out_dir: Path = ICONS) -> list[Path]:
    """Write ``app.png``, ``app.ico`` and ``app.icns`` beside ``svg`` (or into ``out_dir``); return their paths."""
    from PIL import Image

    def pil(pixels: int) -> Image.Image:
        return Image.open(io.BytesIO(png_bytes(render_svg(svg, pixels)))).convert("RGBA")

    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "app.png"
    png.write_bytes(png_bytes(render_svg(svg, PNG_SIZE)))
    ico = out_dir / "app.ico"
    ico_images = [pil(size) for size in ICO_SIZES]
    ico_images[-1].save(ico, format="ICO", sizes=[(s, s) for s in ICO_SIZES], append_images=ico_images[:-1])
    icns = out_dir / "app.icns"
    icns_images = [pil(size) for size in ICNS_SIZES]
    icns_images[-1].save(icns, format="ICNS", append_images=icns_images[:-1])
    return [png, ico, icns]


def write_preview(target: Path, icons_dir: Path = ICONS, size: int = 24) -> Path:
    """Every SVG in ``icons_dir`` at 1x and 2x on light and dark backgrounds, with its name, in one PNG."""
    ensure_gui()
    svgs = sorted(icons_dir.glob("*.svg"))
    columns = 5
    half_w = max(3 * size + 18, 120)
    cell_w, cell_h = 2 * half_w, 2 * size + 30
    rows = (len(svgs) + columns - 1) // columns
    sheet = QImage(columns * cell_w, max(rows, 1) * cell_h, QImage.Format.Format_ARGB32_Premultiplied)
    sheet.fill(QColor("#888888"))
    painter = QPainter(sheet)
    painter.setFont(QFont("Sans", 8))
    for index, svg in enumerate(svgs):
        x0, y0 = (index % columns) * cell_w, (index // columns) * cell_h
        for half, background in enumerate((LIGHT, DARK)):
            left = x0 + half * half_w
            painter.fillRect(left, y0, half_w, cell_h, background)
            painter.drawImage(left + 6, y0 + 6, render_svg(svg, size))
            painter.drawImage(left + 12 + size, y0 + 6, render_svg(svg, 2 * size))
            painter.setPen(QColor("#000000") if background == LIGHT else QColor("#ffffff"))
            painter.drawText(left + 4, y0 + cell_h - 6, svg.stem)
    painter.end()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not sheet.save(str(target)):
        raise OSError(f"could not write {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    """Regenerate the application icon files; optionally write a preview sheet of all icons."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preview", type=Path, metavar="PATH", help="also write a preview sheet of every icon")
    parser.add_argument("--no-app", action="store_true", help="do not rewrite app.png/.ico/.icns")
    args = parser.parse_args(argv)
    if not args.no_app:
        for path in write_app_icons():
            print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size:,} bytes)")
    if args.preview:
        print(f"wrote {write_preview(args.preview)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
