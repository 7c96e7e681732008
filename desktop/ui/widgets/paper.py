"""The sheet printed pages are laid out on: Qt's ``QPageSize``, chosen from the locale unless a setting names one.

Shared by the printing of notices (``ui/requests``) and the Settings dialog (``ui/admin``), which shows what the
locale gives. Staff who brought US Letter layouts from ILLiad expect Letter in the US and Canada and A4 in most of
the world; the workstation's ``paper_size`` setting (:class:`desktop.config.Settings`) overrides the locale for a
printer whose tray holds something else.
"""

from __future__ import annotations

from PySide6.QtCore import QLocale
from PySide6.QtGui import QPageSize

#: Territories whose paper is US Letter (CLDR supplemental data, ``paperSize``); every other one uses A4.
LETTER_TERRITORIES = frozenset(
    {"BZ", "CA", "CL", "CO", "CR", "GT", "MX", "NI", "PA", "PE", "PH", "PR", "SV", "US", "VE"}
)
#: The ``paper_size`` setting's names; empty follows the locale.
NAMED_PAPER = {
    "letter": QPageSize.PageSizeId.Letter,
    "legal": QPageSize.PageSizeId.Legal,
    "a4": QPageSize.PageSizeId.A4,
}


def locale_page_size(locale: QLocale | None = None) -> QPageSize:
    """The sheet the locale's territory uses: US Letter (en_US, en_CA, es_MX…) or A4 (everywhere else).

    ``QLocale.measurementSystem()`` is not enough: Canada measures in metric yet prints on Letter.
    """
    code = QLocale.territoryToCode((locale or QLocale()).territory())
    return QPageSize(QPageSize.PageSizeId.Letter if code in LETTER_TERRITORIES else QPageSize.PageSizeId.A4)


def page_size_for(setting: str = "", locale: QLocale | None = None) -> QPageSize:
    """The sheet for the ``paper_size`` setting: the one it names, else the locale's (:func:`locale_page_size`)."""
    named = NAMED_PAPER.get(setting.strip().casefold())
    return QPageSize(named) if named is not None else locale_page_size(locale)
