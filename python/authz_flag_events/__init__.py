"""Open edX plugin that publishes waffle flag override changes to the event bus."""
