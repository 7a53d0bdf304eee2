"""One measuring pass in its own process: ``python -m nas._device WORK --pass-name NAME ...`` (spawned by
`nas._device._runner.measure`; running the package, not ``nas._device._runner`` itself, keeps runpy from
warning that the module was imported before it ran)."""

import sys

from nas._device._runner import main

sys.exit(main())
