"""The optional extras: an adapter package imported without its framework says which extra to install."""

from __future__ import annotations


def missing_extra(component: str, requirement: str, extra: str) -> ImportError:
    """The error an adapter package raises when its framework is not installed, naming the extra to install.

    Args:
        component: the module that needs the framework (named in the message).
        requirement: what to install, as the message names it (``"langchain-core>=1.0"``).
        extra: this package's extra that installs it (``"langchain"``).
    """
    return ImportError(
        f"{component} needs {requirement}, which is not installed. "
        f"Install it with: pip install 'qrhead-integrations[{extra}]'"
    )
