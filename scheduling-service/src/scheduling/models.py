"""scheduling-service tables."""

from chassis.db import Base

__all__ = ["Base"]
