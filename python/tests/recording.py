"""
Event bus producers for tests, loaded by openedx-events through EVENT_BUS_PRODUCER.
"""
from openedx_events.event_bus import EventBusProducer

SENT = []


class RecordingEventBusProducer(EventBusProducer):
    """Records every send() openedx-events' config-driven handler makes."""

    def send(self, *, signal, topic, event_key_field, event_data, event_metadata):
        SENT.append({
            "signal": signal, "topic": topic, "event_key_field": event_key_field,
            "event_data": event_data, "event_metadata": event_metadata,
        })


class FailingEventBusProducer(EventBusProducer):
    """A producer whose send() raises, like a broken event bus implementation."""

    def send(self, *, signal, topic, event_key_field, event_data, event_metadata):
        raise RuntimeError("event bus is down")


def make_recording_producer():
    return RecordingEventBusProducer()


def make_failing_producer():
    return FailingEventBusProducer()


class RecordingKafkaProducer:
    """Stands in for confluent_kafka.Producer under edx-event-bus-kafka's KafkaEventProducer."""

    def __init__(self):
        self.sent = []

    def produce(self, topic, key=None, value=None, headers=None, on_delivery=None):
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": dict(headers or {})})

    def poll(self, timeout=0):
        return 0

    def flush(self, timeout=-1):
        return 0
