"""
The Open edX public signal this plugin defines.

This module must be imported before ``openedx_events``' AppConfig.ready() validates
``EVENT_BUS_PRODUCER_CONFIG`` (it looks the event type up among defined signals); the plugin's
apps.py imports it at module level, which Django does before any ready() runs.
"""
from openedx_events.tooling import OpenEdxPublicSignal

from .data import WaffleFlagOverrideData

EVENT_TYPE = "org.openedx.platform.waffle_flag_override.changed.v1"

# The event key field: one scope's events stay in order on one partition.
EVENT_KEY_FIELD = "override.scope_key"

# .. event_type: org.openedx.platform.waffle_flag_override.changed.v1
# .. event_name: WAFFLE_FLAG_OVERRIDE_CHANGED
# .. event_description: emitted after a course or org override of a watched waffle flag is
#      saved and its transaction has committed.
# .. event_data: WaffleFlagOverrideData
# .. event_trigger_repository: openedx-authz-flag-events (this plugin)
WAFFLE_FLAG_OVERRIDE_CHANGED = OpenEdxPublicSignal(
    event_type=EVENT_TYPE,
    data={
        "override": WaffleFlagOverrideData,
    },
)
