// Package schemas embeds the Avro schemas of the waffle-flag-override
// event. The .avsc files next to this file are the single source of truth,
// shared with the Python producer; Go code reads them only through this
// package so the two sides can never drift.
package schemas

import "embed"

// FS holds every *.avsc file of this directory.
//
//go:embed *.avsc
var FS embed.FS

// WaffleFlagOverrideChangedV1Value is the value schema (record CloudEvent,
// namespace org.openedx.platform.waffle_flag_override.changed.v1).
//
//go:embed waffle_flag_override_changed.v1.value.avsc
var WaffleFlagOverrideChangedV1Value []byte

// WaffleFlagOverrideChangedV1Key is the key schema: the schema of the
// override.scope_key field alone, as edx-event-bus-kafka extracts it.
//
//go:embed waffle_flag_override_changed.v1.key.avsc
var WaffleFlagOverrideChangedV1Key []byte
