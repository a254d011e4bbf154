"""The hooks a training callback may implement, and the base class that does nothing at each."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
