"""``python -m desktop`` starts the GUI, like the ``callslip`` command."""

from desktop.app import main

raise SystemExit(main())
