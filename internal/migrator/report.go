package migrator

// Error reasons in run metadata, as openedx-authz names them.
const (
	ReasonUnknownRole         = "unknown_role"
	ReasonNoScope             = "no_scope"
	ReasonAssignmentFailed    = "assignment_failed"
	ReasonSkippedForOverride  = "skipped_for_flag_override"
	ReasonNoLegacyEquivalent  = "no_legacy_equivalent"
	ReasonUnexpectedScopeType = "unexpected_scope_type"
	ReasonUnexpectedError     = "unexpected_error"
)

const skippedDetails = "Course-level authoring flag override opposes this organization-level transition"

// entry is one line of successes or errors; empty fields are left out of
// the metadata, as openedx-authz does.
type entry struct{ subject, role, scope, details string }

func (en entry) value() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{"subject": en.subject, "role": en.role, "scope": en.scope, "details": en.details} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// report collects a run's results. Counts are exact; lists keep at most max
// entries each so a huge run's metadata (and memory) stays bounded.
type report struct {
	max          int
	successCount int
	errorCount   int
	successes    []map[string]string
	errors       map[string][]map[string]string
	reasons      map[string]int // exact error count by reason (lists are capped)
	omitted      int
	courses      map[string]bool // course keys whose roles moved (for the ledger)
	progress     *progress       // nil in plans made without a run
}

func newReport(max int) *report {
	return &report{max: max, successes: []map[string]string{}, errors: map[string][]map[string]string{}, reasons: map[string]int{}, courses: map[string]bool{}}
}

func (r *report) success(en entry) {
	r.successCount++
	if len(r.successes) < r.max {
		r.successes = append(r.successes, en.value())
		return
	}
	r.omitted++
}

func (r *report) fail(reason string, en entry) {
	r.errorCount++
	r.reasons[reason]++
	if len(r.errors[reason]) < r.max {
		r.errors[reason] = append(r.errors[reason], en.value())
		return
	}
	r.omitted++
}

// metadata is the run's final metadata: openedx-authz's keys first, then
// what traces the run to its cause.
func (r *report) metadata(req Request) map[string]any {
	md := map[string]any{
		"total":         r.successCount + r.errorCount,
		"success_count": r.successCount,
		"error_count":   r.errorCount,
		"successes":     r.successes,
		"errors":        r.errors,
		"trigger":       req.Trigger.Kind,
		"delete":        req.Delete,
		"migrator":      "authz-flag-consumer",
	}
	if req.Trigger.Kind == "" {
		md["trigger"] = "manual"
	}
	if r.omitted > 0 {
		md["entries_omitted"] = r.omitted
	}
	if req.Trigger.EventID != "" {
		md["event"] = map[string]any{"id": req.Trigger.EventID, "topic": req.Trigger.Topic,
			"partition": req.Trigger.Partition, "offset": req.Trigger.Offset, "record_id": req.Trigger.RecordID}
	}
	if len(req.Excluded) > 0 {
		md["excluded_courses"] = req.Excluded
	}
	if req.DryRun { // never written: these keys stay out of stored runs
		md["dry_run"] = true
		md["error_counts"] = r.reasons
	}
	return md
}
