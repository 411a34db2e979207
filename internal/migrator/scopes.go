package migrator

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"authz-flag-consumer/internal/store"
)

// courseScopes finds or creates the course scope of each course key
// exactly as openedx-authz's Scope.get_or_create_for_external_key does, so
// that openedx-authz keeps working on what this service wrote:
//   - the course's overview row exists (under exactly this key, as
//     openedx-authz's get_object requires): the scope linked to it (its
//     empty external_key filled in); else a pending scope with that
//     external_key and no link gets the link (link_pending_scope); else a
//     new scope with both the link and the external_key;
//   - no overview row: the scope with that external_key, or a new one with
//     the link null (openedx-authz links it when the course is created).
//
// Lookups compare as the database does (case-insensitively on Open edX's
// MySQL), as the ORM's do. cache holds the keys resolved earlier in the run.
//
// Keys are resolved a batch at a time with IN-list queries. Where that could
// differ from one lookup per key (a non-ASCII key, whose equality under a
// MySQL collation may ignore accents; a row the database matched under
// another spelling; two new keys of one batch that the database may take
// for one), the key goes through courseScope, one lookup at a time.
func courseScopes(ctx context.Context, t *tx, keys []string, cache map[string]int64) (map[string]int64, error) {
	var todo, slow []string
	for _, k := range unique(keys) {
		switch {
		case cache[k] != 0:
		case !isASCII(k):
			slow = append(slow, k)
		default:
			todo = append(todo, k)
		}
	}
	more, err := bulkCourseScopes(ctx, t, todo, cache)
	if err != nil {
		return nil, err
	}
	for _, k := range append(slow, more...) {
		if cache[k] != 0 {
			continue
		}
		id, err := courseScope(ctx, t, k)
		if err != nil {
			return nil, fmt.Errorf("course scope of %s: %w", k, err)
		}
		cache[k] = id
	}
	return cache, nil
}

// bulkCourseScopes resolves ASCII keys into cache with a few IN-list
// queries and returns the keys it leaves to courseScope.
func bulkCourseScopes(ctx context.Context, t *tx, keys []string, cache map[string]int64) (slow []string, err error) {
	if len(keys) == 0 {
		return nil, nil
	}
	open := newKeySet(keys)

	// Overview rows under exactly these keys.
	overviews, err := queryPairs(ctx, t, false, "SELECT id, '' FROM "+store.CourseOverviewTable+" WHERE id IN "+inList(len(keys)), keys)
	if err != nil {
		return nil, fmt.Errorf("read course overviews: %w", err)
	}
	hasOverview := map[string]bool{}
	for _, p := range overviews {
		// Other spellings of a key the database matched go one by one.
		slow = append(slow, open.takeOtherSpellings(p.key)...)
		if open.exact(p.key) {
			hasOverview[p.key] = true
		}
	}

	// Scopes linked to those overviews (the lowest id, as get() would find one).
	var linkedKeys []string
	for k := range hasOverview {
		linkedKeys = append(linkedKeys, k)
	}
	if len(linkedKeys) > 0 {
		linked, err := queryPairs(ctx, t, true, `SELECT c.scope_ptr_id, c.course_overview_id, COALESCE(s.external_key, '') FROM `+store.CourseScopeTable+` c
			JOIN `+store.ScopeTable+` s ON s.id = c.scope_ptr_id WHERE c.course_overview_id IN `+inList(len(linkedKeys))+` ORDER BY c.scope_ptr_id`, linkedKeys)
		if err != nil {
			return nil, fmt.Errorf("read course scopes: %w", err)
		}
		first := map[string]bool{}
		for _, p := range linked {
			if first[p.key] {
				continue // the lowest id is the one get() would find
			}
			first[p.key] = true
			slow = append(slow, open.takeOtherSpellings(p.key)...)
			if !open.exact(p.key) {
				continue
			}
			if p.value == "" {
				// An external_key to fill in: courseScope does that.
				slow = append(slow, open.take(p.key)...)
				continue
			}
			cache[p.key] = p.id
		}
		for k := range hasOverview {
			if cache[k] != 0 {
				open.take(k)
			}
		}
	}

	// Scopes by external_key, for the keys still open.
	rest := open.keys()
	if len(rest) == 0 {
		return slow, nil
	}
	byKey, err := queryPairs(ctx, t, true, `SELECT s.id, s.external_key, COALESCE(c.course_overview_id, '') FROM `+store.ScopeTable+` s
		JOIN `+store.CourseScopeTable+` c ON c.scope_ptr_id = s.id WHERE s.external_key IN `+inList(len(rest))+``, rest)
	if err != nil {
		return nil, fmt.Errorf("read course scopes: %w", err)
	}
	for _, p := range byKey {
		slow = append(slow, open.takeOtherSpellings(p.key)...)
		switch {
		case !open.exact(p.key):
		case hasOverview[p.key]:
			// A pending scope to link, or one linked elsewhere: courseScope decides.
			slow = append(slow, open.take(p.key)...)
		default:
			cache[p.key] = p.id
			open.take(p.key)
		}
	}

	// What is left has no scope row under any spelling: create them all,
	// one key per spelling (two spellings of one course in one batch go
	// through courseScope, which finds the first one's row).
	var create [][]any
	var created []string
	seen := map[string]bool{}
	for _, k := range open.keys() {
		folded := strings.ToLower(k)
		if seen[folded] {
			slow = append(slow, k)
			continue
		}
		seen[folded] = true
		create = append(create, []any{k})
		created = append(created, k)
	}
	if len(create) == 0 {
		return slow, nil
	}
	if _, err := insertIDs(ctx, t, store.ScopeTable, []string{"external_key"}, create); err != nil {
		return nil, fmt.Errorf("create scopes: %w", err)
	}
	// Read back rather than trust RETURNING's row order.
	ids, err := queryPairs(ctx, t, true, "SELECT id, external_key, '' FROM "+store.ScopeTable+" WHERE external_key IN "+inList(len(created)), created)
	if err != nil {
		return nil, fmt.Errorf("read created scopes: %w", err)
	}
	link := make([][]any, 0, len(ids))
	for _, p := range ids {
		var overview any
		if hasOverview[p.key] {
			overview = p.key
		}
		link = append(link, []any{p.id, overview})
		cache[p.key] = p.id
	}
	if err := insertRows(ctx, t, store.CourseScopeTable, []string{"scope_ptr_id", "course_overview_id"}, link); err != nil {
		return nil, err
	}
	return slow, nil
}

// pair is one row of queryPairs: a scope id (when selected), a key, a value.
type pair struct {
	id         int64
	key, value string
}

// queryPairs runs q with args as its IN list; q selects (key, value), or
// (id, key, value) when withID.
func queryPairs(ctx context.Context, t *tx, withID bool, q string, args []string) ([]pair, error) {
	rows, err := t.query(ctx, q, anys(args)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pair
	for rows.Next() {
		var p pair
		dest := []any{&p.key, &p.value}
		if withID {
			dest = append([]any{&p.id}, dest...)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// keySet tracks the keys of a batch not resolved yet.
type keySet struct{ open map[string]bool }

func newKeySet(keys []string) *keySet {
	s := &keySet{open: make(map[string]bool, len(keys))}
	for _, k := range keys {
		s.open[k] = true
	}
	return s
}

func (s *keySet) exact(k string) bool { return s.open[k] }

// take removes k and returns it when it was open.
func (s *keySet) take(k string) []string {
	if !s.open[k] {
		return nil
	}
	delete(s.open, k)
	return []string{k}
}

// takeOtherSpellings removes and returns the open keys equal to k but
// for case: a case-insensitive database matched the row of k for them too.
func (s *keySet) takeOtherSpellings(k string) []string {
	var out []string
	for o := range s.open {
		if o != k && strings.EqualFold(o, k) {
			out = append(out, o)
			delete(s.open, o)
		}
	}
	return out
}

func (s *keySet) keys() []string {
	out := make([]string, 0, len(s.open))
	for k := range s.open {
		out = append(out, k)
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// courseScope resolves one key with one lookup at a time (see courseScopes).
func courseScope(ctx context.Context, t *tx, key string) (int64, error) {
	overview, err := queryString(ctx, t, "SELECT id FROM "+store.CourseOverviewTable+" WHERE id = ?", key)
	if err != nil {
		return 0, fmt.Errorf("read course overview: %w", err)
	}
	if overview != nil && *overview != key {
		// Found only by the database's case-insensitive comparison: like
		// openedx-authz's CourseOverviewData.get_object, which requires the
		// canonical key, treat the course as having no overview row.
		overview = nil
	}
	const scopeByKey = "SELECT s.id FROM " + store.ScopeTable + " s JOIN " + store.CourseScopeTable + " c ON c.scope_ptr_id = s.id WHERE s.external_key = ?"
	if overview == nil {
		if id, err := queryID(ctx, t, scopeByKey, key); err != nil || id != 0 {
			return id, err
		}
		return newCourseScope(ctx, t, key, nil)
	}
	id, err := queryID(ctx, t, "SELECT scope_ptr_id FROM "+store.CourseScopeTable+" WHERE course_overview_id = ? ORDER BY scope_ptr_id", *overview)
	if err != nil {
		return 0, err
	}
	if id != 0 {
		_, err := t.exec(ctx, "UPDATE "+store.ScopeTable+" SET external_key = ? WHERE id = ? AND (external_key IS NULL OR external_key = '')", key, id)
		return id, err
	}
	pending, err := queryID(ctx, t, scopeByKey+" AND c.course_overview_id IS NULL", key)
	if err != nil {
		return 0, err
	}
	if pending != 0 {
		_, err := t.exec(ctx, "UPDATE "+store.CourseScopeTable+" SET course_overview_id = ? WHERE scope_ptr_id = ?", *overview, pending)
		return pending, err
	}
	return newCourseScope(ctx, t, key, *overview)
}

func newCourseScope(ctx context.Context, t *tx, key string, overview any) (int64, error) {
	ids, err := insertIDs(ctx, t, store.ScopeTable, []string{"external_key"}, [][]any{{key}})
	if err != nil {
		return 0, fmt.Errorf("create scope: %w", err)
	}
	if err := insertRows(ctx, t, store.CourseScopeTable, []string{"scope_ptr_id", "course_overview_id"}, [][]any{{ids[0], overview}}); err != nil {
		return 0, err
	}
	return ids[0], nil
}
