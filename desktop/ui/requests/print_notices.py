"""Printing notices on paper: one page per request, the patron's address behind a window envelope's window.

Pages are laid out with ``QTextDocument`` in a fixed 96-units-per-inch space (a QImage paint device with that
resolution), then scaled to the printer's resolution, so a notice looks the same in the preview, in a PDF and
on any printer. Each request is drawn on exactly one page: a letter too long for the space below the window is
scaled down rather than spilling onto a second sheet (one sheet per envelope).

Positions are for a letter folded in thirds into a #10 / DL window envelope: the window sits 7/8 in from the
left and 2 in from the top of the sheet (within DIN 5008's address field too), the return address above it.

The :class:`NoticePrinter` owns its ``QPrinter`` for as long as any dialog uses it: PySide deletes a printer
whose last Python reference goes, and Qt then crashes in the preview.

Big batches never freeze the window. ``QPrintPreviewDialog`` draws every page of the document before it shows
one (a 281-page batch froze the window for 10.5 s), so the preview here is a list of pages drawn when they
scroll into view, one page per event-loop turn (a page takes a few tens of milliseconds to lay out), and
printing draws a few pages per turn on a painter kept open between turns, with progress and Cancel. Ctrl+P
(``QKeySequence.Print``) prints from the preview.

The sheet follows the locale (:func:`desktop.ui.widgets.paper.page_size_for`): US Letter where CLDR says the
territory uses it (en_US, en_CA…), A4 elsewhere, unless the workstation's ``paper_size`` setting names one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QMarginsF,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QRect,
    QRectF,
    QSize,
    QSizeF,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QAction,
    QColor,
    QFont,
    QImage,
    QKeySequence,
    QPageLayout,
    QPainter,
    QPalette,
    QPen,
    QTextDocument,
)
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QProgressBar,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from desktop.config import Settings
from desktop.services.requests.printing import NoticePage
from desktop.ui.widgets.paper import page_size_for

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


#: Preview pixels per inch at 100 % zoom (before the screen's device pixel ratio).
PREVIEW_DPI = 64
#: Pages drawn per event-loop turn are limited by time, not by count: a turn ends after this many seconds.
PRINT_SLICE_SECONDS = 0.02


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
        # Ink is black whatever the screen's palette: drawContents() would take the application's text colour,
        # light grey on the white sheet under a dark palette (on screen and on paper).
        context = QAbstractTextDocumentLayout.PaintContext()
        context.palette.setColor(QPalette.ColorRole.Text, QColor("black"))
        context.clip = clip
        painter.setClipRect(clip)
        self.document.documentLayout().draw(painter, context)
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


def _begin(printer: QPrinter) -> QPainter:
    printer.setFullPage(True)  # we place everything from the paper's corner ourselves
    painter = QPainter()
    if not painter.begin(printer):
        target = printer.outputFileName() or printer.printerName() or "the printer"
        raise PrintError(f"Cannot print to {target}: it could not be opened.")
    return painter


def _draw_sheet(printer: QPrinter, painter: QPainter, page: NoticePage, first: bool) -> None:
    if not first and not printer.newPage():
        raise PrintError("The printer refused a new page.")
    paper = printer.pageLayout().fullRect(QPageLayout.Unit.Inch).size()
    scale = printer.resolution() / DOC_DPI
    painter.save()
    painter.scale(scale, scale)
    draw_notice(painter, page, paper)
    painter.restore()


def paint_notices(printer: QPrinter, pages: Sequence[NoticePage]) -> int:
    """Print ``pages`` on ``printer``, one sheet each, in one go; returns the number of sheets.

    Raises:
        PrintError: the printer (or the PDF file) cannot be opened.
    """
    painter = _begin(printer)
    try:
        for number, page in enumerate(pages):
            _draw_sheet(printer, painter, page, number == 0)
    finally:
        painter.end()
    return len(pages)


class PrintJob(QObject):
    """Prints a batch a few sheets per event-loop turn, so the window keeps answering (and Cancel works).

    The painter stays open on the printer between turns; each turn draws sheets for at most
    :data:`PRINT_SLICE_SECONDS` (at least one).

    Signals:
        progressed(int, int): sheets drawn so far, and the batch's size.
        done(bool, str): True when every sheet was drawn; else False and why (cancelled, the printer failed).
    """

    progressed = Signal(int, int)
    done = Signal(bool, str)

    def __init__(self, printer: QPrinter, pages: Sequence[NoticePage], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._printer = printer
        self._pages = tuple(pages)
        self._painter: QPainter | None = None
        self._next = 0
        self._timer = QTimer(self)  # owned by the job: it dies with it, and every way out stops it
        self._timer.setObjectName("printJobTimer")
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.on_slice)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and the end (done, failed or cancelled)."""
        return self._painter is not None

    def start(self) -> None:
        """Open the printer and draw the first sheets on the next turns; a printer that cannot be opened ends the
        job at once (``done(False, why)``)."""
        try:
            self._painter = _begin(self._printer)
        except PrintError as exc:
            self.done.emit(False, str(exc))
            return
        self._next = 0
        self._timer.start()

    @Slot()
    def on_slice(self) -> None:
        """Draw sheets for one time slice."""
        painter = self._painter
        if painter is None:
            self._timer.stop()
            return
        started = time.perf_counter()
        try:
            while self._next < len(self._pages):
                _draw_sheet(self._printer, painter, self._pages[self._next], self._next == 0)
                self._next += 1
                if time.perf_counter() - started >= PRINT_SLICE_SECONDS:
                    break
        except PrintError as exc:
            self._finish(False, str(exc), abort=True)
            return
        self.progressed.emit(self._next, len(self._pages))
        if self._next >= len(self._pages):
            self._finish(True, "")

    def cancel(self) -> None:
        """Stop and abort the print run (what was drawn is dropped where the printer allows it)."""
        if self._painter is not None:
            self._finish(False, "Printing was cancelled.", abort=True)

    def _finish(self, ok: bool, message: str, *, abort: bool = False) -> None:
        self._timer.stop()
        painter, self._painter = self._painter, None
        if abort:
            self._printer.abort()
        if painter is not None and painter.isActive():
            painter.end()
        self.done.emit(ok, message)


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


Index = QModelIndex | QPersistentModelIndex
#: The preview's margin around each page, in pixels.
PAGE_MARGIN = 8


class PageModel(QAbstractListModel):
    """The preview's pages: each drawn only when a view asks for it, one per event-loop turn, and a few kept.

    ``data(DecorationRole)`` answers with the page's image when it is drawn, else ``None`` and queues the page;
    a zero-interval timer draws the most recently asked-for page on the next turn and says so with
    ``dataChanged``. Only the last pages asked for are kept queued (the ones on screen), so scrolling fast past
    200 pages draws only where it stops.

    Attributes:
        drawn: how many page images were drawn so far (tests check a big batch is not drawn whole).
    """

    QUEUED = 8
    KEPT = 24

    def __init__(self, pages: Sequence[NoticePage], paper: QSizeF, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pages = tuple(pages)
        self._paper = paper
        self._zoom = 1.0
        self._ratio = 1.0
        self._images: OrderedDict[int, QImage] = OrderedDict()
        self._queued: list[int] = []
        self.drawn = 0
        self._timer = QTimer(self)  # owned by the model; stopped when nothing is queued
        self._timer.setObjectName("previewPageTimer")
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.on_draw_next)

    @property
    def zoom(self) -> float:
        """1.0 shows a page at :data:`PREVIEW_DPI`."""
        return self._zoom

    def page_pixels(self) -> QSize:
        """One page's size on screen (device-independent pixels)."""
        dpi = PREVIEW_DPI * self._zoom
        return QSize(round(self._paper.width() * dpi), round(self._paper.height() * dpi))

    def set_zoom(self, zoom: float, device_pixel_ratio: float) -> None:
        """Show pages bigger or smaller (and sharp on a high-DPI screen): every page is drawn again."""
        zoom = min(max(zoom, 0.5), 4.0)
        if zoom == self._zoom and device_pixel_ratio == self._ratio:
            return
        self.layoutAboutToBeChanged.emit()
        self._zoom, self._ratio = zoom, device_pixel_ratio
        self._images.clear()
        self._queued.clear()
        self.layoutChanged.emit()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        """One row per notice."""
        return 0 if parent.isValid() else len(self._pages)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """The page image (when drawn), its size, and words for screen readers."""
        if not index.isValid() or not 0 <= index.row() < len(self._pages):
            return None
        row = index.row()
        if role == Qt.ItemDataRole.DecorationRole:
            image = self._images.get(row)
            if image is None:
                self._queue(row)
            return image
        if role == Qt.ItemDataRole.SizeHintRole:
            return self.page_pixels() + QSize(2 * PAGE_MARGIN, 2 * PAGE_MARGIN)
        if role in (Qt.ItemDataRole.AccessibleTextRole, Qt.ItemDataRole.ToolTipRole):
            page = self._pages[row]
            return f"Page {row + 1} of {len(self._pages)}: {page.patron_name} — {page.title}"
        return None

    def _queue(self, row: int) -> None:
        if row in self._queued:
            self._queued.remove(row)
        self._queued.append(row)
        del self._queued[: -self.QUEUED]
        if not self._timer.isActive():
            self._timer.start()

    @Slot()
    def on_draw_next(self) -> None:
        """Draw the page asked for last (one page per event-loop turn)."""
        while self._queued:
            row = self._queued.pop()
            if row not in self._images:
                break
        else:
            return
        dpi = round(PREVIEW_DPI * self._zoom * self._ratio)
        image = render_page_image(self._pages[row], dpi=dpi, paper=self._paper)
        image.setDevicePixelRatio(self._ratio)
        self.drawn += 1
        self._images[row] = image
        while len(self._images) > self.KEPT:
            self._images.popitem(last=False)
        index = self.index(row)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])
        if self._queued:
            self._timer.start()


class _PageDelegate(QStyledItemDelegate):
    """A page as a sheet of paper: white (it is paper, in any palette), outlined, highlighted when current."""

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        model = index.model()
        size = model.page_pixels() if isinstance(model, PageModel) else QSize()
        rect = QRect(option.rect.topLeft() + QPoint(PAGE_MARGIN, PAGE_MARGIN), size)
        rect.moveLeft(option.rect.left() + max(PAGE_MARGIN, (option.rect.width() - size.width()) // 2))
        painter.save()
        painter.fillRect(rect, QColor("white"))
        image = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(image, QImage):
            painter.drawImage(rect, image)
        else:
            painter.setPen(QColor("#555555"))  # on the white sheet: 7.5:1
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, f"Drawing page {index.row() + 1}…")
        palette: QPalette = option.palette
        if option.state & QStyle.StateFlag.State_HasFocus or option.state & QStyle.StateFlag.State_Selected:
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 3))
        else:
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Shadow), 1))
        painter.drawRect(rect)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        """The model's page size plus the margin."""
        hint = index.data(Qt.ItemDataRole.SizeHintRole)
        return hint if isinstance(hint, QSize) else super().sizeHint(option, index)


class NoticePreviewDialog(QDialog):
    """The print preview: pages drawn as they come into view, Print… (Ctrl+P) with progress and Cancel.

    It accepts (``QDialog.Accepted``) only once every page went to the printer, like ``QPrintPreviewDialog``.

    Attributes:
        model: the pages (see :class:`PageModel`).
        print_dialog: the printer chooser while it is open.
        job: the print run while it runs.
    """

    def __init__(self, printer: QPrinter, pages: Sequence[NoticePage], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._printer = printer
        self._pages = tuple(pages)
        self.print_dialog: QPrintDialog | None = None
        self.job: PrintJob | None = None
        self.setObjectName("printPreviewDialog")
        self.setAccessibleName("Print preview of the notices")
        self.setWindowTitle(f"Print Notifications — {len(self._pages)} notice(s)")
        self.setWindowFlag(Qt.WindowType.WindowMaximizeButtonHint, True)
        paper = printer.pageLayout().fullRect(QPageLayout.Unit.Inch).size()
        self.model = PageModel(self._pages, paper, self)

        self.view = QListView(self)
        self.view.setObjectName("previewPages")
        self.view.setAccessibleName("Pages of the print preview")
        self.view.setModel(self.model)
        self.view.setItemDelegate(_PageDelegate(self.view))
        self.view.setUniformItemSizes(True)  # nothing measures 281 pages one by one
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.verticalScrollBar().setSingleStep(24)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setBackgroundRole(QPalette.ColorRole.Mid)
        self.view.viewport().setBackgroundRole(QPalette.ColorRole.Mid)
        self.view.verticalScrollBar().valueChanged.connect(self.on_scrolled)

        self.page_label = QLabel(self)
        self.page_label.setObjectName("previewPageLabel")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("printProgress")
        self.progress.setAccessibleName("Printing progress")
        self.progress.setRange(0, len(self._pages))
        self.progress.hide()
        self.message_label = QLabel(self)
        self.message_label.setObjectName("previewMessage")
        self.message_label.setWordWrap(True)
        self.message_label.hide()

        self.print_action = QAction("&Print…", self)
        self.print_action.setObjectName("previewPrintAction")
        self.print_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Print))
        self.print_action.triggered.connect(self.on_print)
        self.addAction(self.print_action)
        zoom_in = QAction("Zoom in", self)
        zoom_in.setObjectName("previewZoomInAction")
        zoom_in.setShortcut(QKeySequence(QKeySequence.StandardKey.ZoomIn))
        zoom_in.triggered.connect(self.on_zoom_in)
        zoom_out = QAction("Zoom out", self)
        zoom_out.setObjectName("previewZoomOutAction")
        zoom_out.setShortcut(QKeySequence(QKeySequence.StandardKey.ZoomOut))
        zoom_out.triggered.connect(self.on_zoom_out)
        self.addActions([zoom_in, zoom_out])

        keys = self.print_action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        self.print_button = self._button(f"&Print… ({keys})", "previewPrintButton", "Print the notices", self.on_print)
        self.zoom_out_button = self._button("Zoom &out", "previewZoomOutButton", "Zoom out", self.on_zoom_out)
        self.zoom_in_button = self._button("Zoom &in", "previewZoomInButton", "Zoom in", self.on_zoom_in)
        self.cancel_print_button = self._button(
            "&Cancel printing", "cancelPrintingButton", "Cancel printing", self.on_cancel_printing
        )
        self.cancel_print_button.hide()
        self.close_button = self._button("Close", "previewCloseButton", "Close the preview", self.reject)

        bar = QHBoxLayout()
        bar.addWidget(self.print_button)
        bar.addWidget(self.zoom_out_button)
        bar.addWidget(self.zoom_in_button)
        bar.addWidget(self.page_label, 1)
        bar.addWidget(self.progress)
        bar.addWidget(self.cancel_print_button)
        bar.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.message_label)
        layout.addWidget(self.view, 1)
        self.resize(900, 1000)
        self.on_scrolled()
        self.view.setFocus(Qt.FocusReason.OtherFocusReason)
        if self._pages:
            self.view.setCurrentIndex(self.model.index(0))

    def _button(self, text: str, name: str, accessible: str, slot: object) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.setAccessibleName(accessible)
        button.setAutoDefault(False)
        button.clicked.connect(slot)
        return button

    def first_visible_page(self) -> int:
        """The page at the top of the view (0-based)."""
        index = self.view.indexAt(QPoint(self.view.viewport().width() // 2, PAGE_MARGIN + 1))
        return index.row() if index.isValid() else 0

    @Slot()
    def on_scrolled(self) -> None:
        """Say which page is on screen."""
        total = len(self._pages)
        self.page_label.setText(f"Page {min(self.first_visible_page() + 1, total)} of {total}" if total else "")

    @Slot()
    def on_zoom_in(self) -> None:
        """Bigger pages (Ctrl++)."""
        self.model.set_zoom(self.model.zoom * 1.25, self.devicePixelRatioF())

    @Slot()
    def on_zoom_out(self) -> None:
        """Smaller pages (Ctrl+-)."""
        self.model.set_zoom(self.model.zoom / 1.25, self.devicePixelRatioF())

    @Slot()
    def on_print(self) -> None:
        """Print… (Ctrl+P): choose the printer, then print every page."""
        if self.job is not None or self.print_dialog is not None:
            return
        dialog = QPrintDialog(self._printer, self)
        dialog.setObjectName("printDialog")
        dialog.accepted.connect(self.on_printer_chosen)
        dialog.finished.connect(self.on_print_dialog_finished)
        self.print_dialog = dialog
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.show()

    @Slot(int)
    def on_print_dialog_finished(self, _result: int) -> None:
        """The printer chooser closed (chosen or not)."""
        dialog, self.print_dialog = self.print_dialog, None
        if dialog is not None:
            dialog.deleteLater()

    @Slot()
    def on_printer_chosen(self) -> None:
        """Start the print run, a few pages per event-loop turn."""
        self.start_printing()

    def start_printing(self) -> None:
        """Print every page on the printer as it is set up now (the chooser's OK, and tests)."""
        if self.job is not None:
            return
        self.job = PrintJob(self._printer, self._pages, self)
        self.job.progressed.connect(self.on_print_progress)
        self.job.done.connect(self.on_print_done)
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_print_button.show()
        self.print_button.setEnabled(False)
        self.print_action.setEnabled(False)
        self.message_label.hide()
        self.job.start()

    @Slot(int, int)
    def on_print_progress(self, done: int, total: int) -> None:
        """Move the progress bar."""
        self.progress.setValue(done)
        self.page_label.setText(f"Printing page {done} of {total}…")

    @Slot()
    def on_cancel_printing(self) -> None:
        """Stop the print run; the preview stays open."""
        if self.job is not None:
            self.job.cancel()

    @Slot(bool, str)
    def on_print_done(self, ok: bool, message: str) -> None:
        """Every page printed: close as accepted. Failed or cancelled: say so and stay."""
        job, self.job = self.job, None
        if job is not None:
            job.deleteLater()
        self.progress.hide()
        self.cancel_print_button.hide()
        self.print_button.setEnabled(True)
        self.print_action.setEnabled(True)
        if ok:
            self.accept()
            return
        self.message_label.setText(message)
        self.message_label.show()
        self.on_scrolled()

    def done(self, result: int) -> None:
        """Closing while printing cancels the print run first."""
        if self.job is not None and result != QDialog.DialogCode.Accepted:
            self.job.cancel()
        super().done(result)


class NoticePrinter(QObject):
    """Owns the QPrinter and the print preview for a batch of notices.

    Signals:
        finished(bool): the preview closed; True when staff printed from it, False when they cancelled.
    """

    finished = Signal(bool)

    def __init__(self, parent: QObject | None = None, *, paper_size: str = "") -> None:
        super().__init__(parent)
        # Kept for the object's whole life: Qt crashes if the printer is collected while a dialog uses it.
        self._printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        self._pages: tuple[NoticePage, ...] = ()
        self.preview_dialog: NoticePreviewDialog | None = None
        self.set_paper_size(paper_size)

    @property
    def printer(self) -> QPrinter:
        """The printer the preview prints to (its settings persist between batches)."""
        return self._printer

    @property
    def pages(self) -> tuple[NoticePage, ...]:
        """The batch being previewed."""
        return self._pages

    def set_paper_size(self, setting: str) -> None:
        """Lay notices out on the sheet the ``paper_size`` setting names ("" follows the locale)."""
        self._printer.setPageSize(page_size_for(setting))
        self._printer.setPageMargins(QMarginsF(0, 0, 0, 0), QPageLayout.Unit.Inch)

    @Slot(object)
    def on_settings_changed(self, settings: object) -> None:
        """The workstation's settings were saved: follow a changed paper size."""
        if isinstance(settings, Settings):
            self.set_paper_size(settings.paper_size)

    def preview(self, pages: Sequence[NoticePage], parent: QWidget | None = None) -> NoticePreviewDialog:
        """Open the print preview (window-modal, not blocking); :attr:`finished` tells how it ended."""
        self._pages = tuple(pages)
        self._printer.setOutputFormat(QPrinter.OutputFormat.NativeFormat)
        dialog = NoticePreviewDialog(self._printer, self._pages, parent)
        dialog.finished.connect(self.on_preview_finished)
        self.preview_dialog = dialog
        dialog.open()
        return dialog

    def _pdf_printer(self, path: Path) -> QPrinter:
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
        printer.setPageLayout(self._printer.pageLayout())
        printer.setOutputFileName(str(path))
        printer.setCreator("Callslip")
        printer.setDocName("Interlibrary loan notices")
        return printer

    def print_to_pdf(self, pages: Sequence[NoticePage], path: Path) -> int:
        """Print straight to a PDF file in one go (the headless path, and tests); returns the number of pages."""
        self._pages = tuple(pages)
        return paint_notices(self._pdf_printer(path), self._pages)

    def pdf_job(self, pages: Sequence[NoticePage], path: Path) -> PrintJob:
        """A :class:`PrintJob` writing ``pages`` into a PDF file a few pages per event-loop turn (Save as PDF:
        281 letters took the window away for seconds in one go). Not started: connect its signals, then call
        :meth:`PrintJob.start`. The job keeps its printer (Qt crashes if a printer goes while it is painted on)."""
        self._pages = tuple(pages)
        return PrintJob(self._pdf_printer(path), self._pages, self)

    @Slot(int)
    def on_preview_finished(self, result: int) -> None:
        """Forget the dialog and say whether it printed (the preview accepts only after printing)."""
        dialog, self.preview_dialog = self.preview_dialog, None
        if dialog is not None:
            dialog.deleteLater()
        self.finished.emit(result == QDialog.DialogCode.Accepted)
