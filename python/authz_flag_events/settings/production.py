"""Production settings: applied again after the operator's YAML settings are loaded."""
from ..conf import apply_plugin_settings


def plugin_settings(settings):
    """Re-apply, so a topic set in production settings reaches the producer entry."""
    apply_plugin_settings(settings)
