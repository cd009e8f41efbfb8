"""``python -m qrhead_integrations.cli``: the same as the ``qrhead`` command."""

from . import app

app()
