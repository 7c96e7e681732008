"""Use cases over one session each: what the GUI and ``callslip-manager`` call. Never imports Qt widgets."""
