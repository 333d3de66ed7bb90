"""The event bus: in-process by default, or one Redis stream shared by several servers; every stage publishes,
subscribers resume from an event id."""

from media_server.bus.base import EventBus, ResumingBus, StoredAfter, SubscriberTooSlow, Subscription
from media_server.bus.memory import InMemoryEventBus

__all__ = ["EventBus", "InMemoryEventBus", "ResumingBus", "StoredAfter", "SubscriberTooSlow", "Subscription"]
