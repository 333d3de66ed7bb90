"""The event bus: in-process by default; every stage publishes, subscribers resume from an event id."""

from media_server.bus.base import EventBus, SubscriberTooSlow, Subscription
from media_server.bus.memory import InMemoryEventBus

__all__ = ["EventBus", "InMemoryEventBus", "SubscriberTooSlow", "Subscription"]
