"""Printing notices on paper: one page per request, the patron's address behind a window envelope's window.

Pages are laid out with ``QTextDocument`` in a fixed 96-units-per-inch space (a QImage paint device with that
resolution), then scaled to the printer's resolution, so a notice looks the same in the preview, in a PDF and
on any printer. Each request is drawn on exactly one page: a letter too long for the space below the window is
scaled down rather than spilling onto a second sheet (one sheet per envelope).

Positions are for a letter folded in thirds into a #10 / DL window envelope: the window sits 7/8 in from the
left and 2 in from the top of the sheet (within DIN 5008's address field too), the return address above it.

The :class:`NoticePrinter` owns its ``QPrinter`` for as long as any dialog uses it: PySide deletes a printer
whose last Python reference goes, and Qt then crashes in the preview.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QMarginsF, QObject, QPointF, QRectF, QSizeF, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QImage, QPageLayout, QPainter, QPen, QTextDocument
from PySide6.QtPrintSupport import QPrinter, QPrintPreviewDialog
from PySide6.QtWidgets import QDialog, QWidget

from desktop.services.requests.printing import NoticePage

#: Layout units per inch (documents are laid out at this resolution, then scaled to the printer's).
DOC_DPI = 96
MARGIN_IN = 0.75
RETURN_TOP_IN = 0.5
RETURN_HEIGHT_IN = 1.3
WINDOW_LEFT_IN = 0.875
WINDOW_TOP_IN = 2.0
WINDOW_WIDTH_IN = 3.75
WINDOW_HEIGHT_IN = 1.125
LETTER_TOP_IN = 3.5
STYLE = """
h2 { font-size: 15pt; margin-bottom: 8px; }
p { margin-top: 4px; margin-bottom: 6px; }
table.item th { padding-right: 14px; color: #333333; }
table.item td, table.item th { padding-top: 2px; padding-bottom: 2px; }
.date { margin-bottom: 12px; }
"""


class PrintError(RuntimeError):
    """The printer could not be used (no printer, file not writable)."""


def _layout_device() -> QImage:
    image = QImage(1, 1, QImage.Format.Format_ARGB32)
    dots_per_meter = round(DOC_DPI / 0.0254)
    image.setDotsPerMeterX(dots_per_meter)
    image.setDotsPerMeterY(dots_per_meter)
    return image


class _Block:
    """One laid-out HTML block; holds its layout device so it outlives the document's use of it."""

    def __init__(self, html: str, width: float, point_size: float) -> None:
        self.device = _layout_device()
        self.document = QTextDocument()
        self.document.documentLayout().setPaintDevice(self.device)
        font = QFont("DejaVu Serif")
        font.setStyleHint(QFont.StyleHint.Serif)
        font.setPointSizeF(point_size)
        self.document.setDefaultFont(font)
        self.document.setDocumentMargin(0)
        self.document.setDefaultStyleSheet(STYLE)
        self.document.setHtml(html)
        self.document.setTextWidth(width)

    def draw(self, painter: QPainter, rect: QRectF, *, fit: bool) -> None:
        """Draw at ``rect``'s corner, clipped to it; ``fit`` scales a too-tall block down to fit."""
        height = self.document.size().height()
        painter.save()
        painter.translate(rect.topLeft())
        if fit and height > rect.height() > 0:
            scale = rect.height() / height
            painter.scale(scale, scale)
            clip = QRectF(0, 0, rect.width() / scale, height)
        else:
            clip = QRectF(0, 0, rect.width(), rect.height())
        self.document.drawContents(painter, clip)
        painter.restore()


def _inches(value: float) -> float:
    return value * DOC_DPI


def draw_notice(painter: QPainter, page: NoticePage, paper: QSizeF) -> None:
    """Draw one notice; ``painter`` is in layout units (1/96 in) from the paper's top-left corner.

    Args:
        paper: the sheet's size in inches.
    """
    width = _inches(paper.width() - 2 * MARGIN_IN)
    bottom = _inches(paper.height() - MARGIN_IN)
    if page.window_html:
        if page.return_html:
            _Block(page.return_html, _inches(3.5), 9).draw(
                painter, QRectF(_inches(MARGIN_IN), _inches(RETURN_TOP_IN), _inches(3.5), _inches(RETURN_HEIGHT_IN)),
                fit=True,
            )  # fmt: skip
        window = QRectF(
            _inches(WINDOW_LEFT_IN), _inches(WINDOW_TOP_IN), _inches(WINDOW_WIDTH_IN), _inches(WINDOW_HEIGHT_IN)
        )
        _Block(page.window_html, window.width(), 11).draw(painter, window, fit=True)
        letter_top = _inches(LETTER_TOP_IN)
        _Block(page.letter_html, width, 11).draw(
            painter, QRectF(_inches(MARGIN_IN), letter_top, width, bottom - letter_top), fit=True
        )
    else:  # a template without a window block: the whole notice from the top margin
        top = _inches(MARGIN_IN)
        _Block(page.html, width, 11).draw(painter, QRectF(_inches(MARGIN_IN), top, width, bottom - top), fit=True)
    _fold_marks(painter, paper)


def _fold_marks(painter: QPainter, paper: QSizeF) -> None:
    """Short ticks at the left edge where the sheet is folded in thirds for the envelope."""
    painter.save()
    painter.setPen(QPen(QColor("#9a9a9a"), 0.75))
    for third in (1, 2):
        y = _inches(paper.height() * third / 3)
        painter.drawLine(QPointF(_inches(0.15), y), QPointF(_inches(0.4), y))
    painter.restore()


def paint_notices(printer: QPrinter, pages: Sequence[NoticePage]) -> int:
    """Print ``pages`` on ``printer``, one sheet each; returns the number of sheets.

    Raises:
        PrintError: the printer (or the PDF file) cannot be opened.
    """
    printer.setFullPage(True)  # we place everything from the paper's corner ourselves
    painter = QPainter()
    if not painter.begin(printer):
        target = printer.outputFileName() or printer.printerName() or "the printer"
        raise PrintError(f"Cannot print to {target}: it could not be opened.")
    try:
        paper = printer.pageLayout().fullRect(QPageLayout.Unit.Inch).size()
        scale = printer.resolution() / DOC_DPI
        for number, page in enumerate(pages):
            if number and not printer.newPage():
                raise PrintError("The printer refused a new page.")
            painter.save()
            painter.scale(scale, scale)
            draw_notice(painter, page, paper)
            painter.restore()
    finally:
        painter.end()
    return len(pages)


def render_page_image(page: NoticePage, *, dpi: int = 100, paper: QSizeF | None = None) -> QImage:
    """One notice as an image (for screenshots and the README), white background."""
    paper = paper or QSizeF(8.5, 11)
    image = QImage(round(paper.width() * dpi), round(paper.height() * dpi), QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.white)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.scale(dpi / DOC_DPI, dpi / DOC_DPI)
    draw_notice(painter, page, paper)
    painter.end()
    return image


class NoticePrinter(QObject):
    """Owns the QPrinter and the print preview for a batch of notices.

    Signals:
        finished(bool): the preview closed; True when staff printed from it, False when they cancelled.
    """

    finished = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Kept for the object's whole life: Qt crashes if the printer is collected while a dialog uses it.
        self._printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        self._printer.setPageMargins(QMarginsF(0, 0, 0, 0), QPageLayout.Unit.Inch)
        self._pages: tuple[NoticePage, ...] = ()
        self.preview_dialog: QPrintPreviewDialog | None = None

    @property
    def printer(self) -> QPrinter:
        """The printer the preview prints to (its settings persist between batches)."""
        return self._printer

    @property
    def pages(self) -> tuple[NoticePage, ...]:
        """The batch being previewed."""
        return self._pages

    def preview(self, pages: Sequence[NoticePage], parent: QWidget | None = None) -> QPrintPreviewDialog:
        """Open the print preview (window-modal, not blocking); :attr:`finished` tells how it ended."""
        self._pages = tuple(pages)
        self._printer.setOutputFormat(QPrinter.OutputFormat.NativeFormat)
        dialog = QPrintPreviewDialog(self._printer, parent)
        dialog.setObjectName("printPreviewDialog")
        dialog.setAccessibleName("Print preview of the notices")
        dialog.setWindowTitle(f"Print Notifications — {len(self._pages)} notice(s)")
        dialog.resize(900, 1000)
        dialog.paintRequested.connect(self.on_paint_requested)
        dialog.finished.connect(self.on_preview_finished)
        self.preview_dialog = dialog
        dialog.open()
        return dialog

    def print_to_pdf(self, pages: Sequence[NoticePage], path: Path) -> int:
        """Print straight to a PDF file (Save as PDF, and tests); returns the number of pages."""
        self._pages = tuple(pages)
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
        printer.setPageLayout(self._printer.pageLayout())
        printer.setOutputFileName(str(path))
        printer.setCreator("Callslip")
        printer.setDocName("Interlibrary loan notices")
        return paint_notices(printer, self._pages)

    @Slot(QPrinter)
    def on_paint_requested(self, printer: QPrinter) -> None:
        """The preview (or its Print button) wants the pages drawn."""
        paint_notices(printer, self._pages)

    @Slot(int)
    def on_preview_finished(self, result: int) -> None:
        """Forget the dialog and say whether it printed (QPrintPreviewDialog accepts only after printing)."""
        dialog, self.preview_dialog = self.preview_dialog, None
        if dialog is not None:
            dialog.deleteLater()
        self.finished.emit(result == QDialog.DialogCode.Accepted)
