// Package flagcase generates the cases of the reconciliation property
// tests and holds their oracle: orgs with courses and legacy roles of their
// own, a sequence of course and org override saves, a random delivery of
// their events (reordered, sometimes twice, sometimes lost), and a plain
// model of the flag that knows nothing of the implementation (a course's
// own enabled override, else its org's, else the instance-wide flag, off
// in these tests).
package flagcase

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/demo"
)

// mapped are the legacy roles that move (the cases use no others).
var mapped = []string{"instructor", "staff", "limited_staff", "data_researcher", "beta_testers", "ccx_coach"}

// Case is one case of the property.
type Case struct {
	ID      int
	Orgs    []string
	Courses map[string][]string // org -> course keys
	Roles   []demo.Role
	Saves   []demo.Override // ID set once saved

	Published, Lost, Dups int // events sent (duplicates count twice), never sent, sent twice

	rng   *rand.Rand
	saved int
	queue []int // saves whose events wait to be published
	done  bool
}

// New makes case id of a seed. Its orgs are named <prefix><id>O<n>, so
// cases of one run never share a scope.
func New(seed uint64, id int, prefix string) *Case {
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	c := &Case{ID: id, rng: rng, Courses: map[string][]string{}}
	user := strings.ToLower(prefix)
	for o := range 2 {
		org := fmt.Sprintf("%s%dO%d", prefix, id, o)
		c.Orgs = append(c.Orgs, org)
		for k := range 1 + rng.IntN(3) {
			key := fmt.Sprintf("course-v1:%s+C%d+2026", org, k)
			c.Courses[org] = append(c.Courses[org], key)
			for u := range 1 + rng.IntN(3) {
				c.Roles = append(c.Roles, demo.Role{Username: fmt.Sprintf("%s%d_%d_%d_%d", user, id, o, k, u), Org: org, CourseID: key, Role: mapped[rng.IntN(len(mapped))]})
			}
		}
		if rng.IntN(2) == 0 { // an org-wide role
			c.Roles = append(c.Roles, demo.Role{Username: fmt.Sprintf("%s%d_%d_w", user, id, o), Org: org, Role: mapped[rng.IntN(len(mapped))]})
		}
	}
	for range 2 + rng.IntN(7) {
		o := demo.Override{Flag: authz.DefaultFlag, Enabled: rng.IntN(5) > 0, Choice: []string{"on", "off"}[rng.IntN(2)]}
		org := c.Orgs[rng.IntN(len(c.Orgs))]
		if rng.IntN(3) == 0 {
			o.ScopeType, o.ScopeKey = "org", org
		} else {
			cs := c.Courses[org]
			o.ScopeType, o.ScopeKey = "course", cs[rng.IntN(len(cs))]
		}
		c.Saves = append(c.Saves, o)
	}
	return c
}

// Step does the case's next save (save returns the row as saved) and
// publishes some of the waiting events in random order: 1 in 10 lost (the
// LMS only logs a failed publish), 1 in 10 sent twice (the same message).
// It reports whether the case still had work.
func (c *Case) Step(save func(demo.Override) demo.Override, publish func(o demo.Override, times int)) bool {
	if c.done {
		return false
	}
	if c.saved < len(c.Saves) {
		c.Saves[c.saved] = save(c.Saves[c.saved])
		c.queue = append(c.queue, c.saved)
		c.saved++
	}
	last := c.saved == len(c.Saves)
	for len(c.queue) > 0 && (last || c.rng.IntN(2) == 0) {
		i := c.rng.IntN(len(c.queue))
		s := c.queue[i]
		c.queue = append(c.queue[:i], c.queue[i+1:]...)
		switch n := c.rng.IntN(10); {
		case n == 0:
			c.Lost++
		case n == 1:
			publish(c.Saves[s], 2)
			c.Published += 2
			c.Dups++
		default:
			publish(c.Saves[s], 1)
			c.Published++
		}
	}
	if last && len(c.queue) == 0 {
		c.done = true
	}
	return true
}

// model is the newest save of each scope.
type model struct{ course, org map[string]demo.Override }

func forces(o demo.Override, ok bool) (on, forced bool) {
	if !ok || !o.Enabled || (o.Choice != "on" && o.Choice != "off") {
		return false, false
	}
	return o.Choice == "on", true
}

func (m model) orgOn(org string) bool {
	o, ok := m.org[org]
	on, _ := forces(o, ok)
	return on // not forced: the instance-wide flag, off in these tests
}

func (m model) courseOn(org, key string) bool {
	o, ok := m.course[key]
	if on, forced := forces(o, ok); forced {
		return on
	}
	return m.orgOn(org)
}

// Oracle replays the saves: the final effective state of every scope
// (orgs by name, courses by key) and how many times each one changed.
func (c *Case) Oracle() (final map[string]bool, changes map[string]int) {
	m := model{course: map[string]demo.Override{}, org: map[string]demo.Override{}}
	state := func() map[string]bool {
		s := map[string]bool{}
		for _, org := range c.Orgs {
			s[org] = m.orgOn(org)
			for _, k := range c.Courses[org] {
				s[k] = m.courseOn(org, k)
			}
		}
		return s
	}
	changes = map[string]int{}
	prev := state()
	for _, o := range c.Saves {
		if o.ScopeType == "org" {
			m.org[o.ScopeKey] = o
		} else {
			m.course[o.ScopeKey] = o
		}
		now := state()
		for k, on := range now {
			if on != prev[k] {
				changes[k]++
			}
		}
		prev = now
	}
	return prev, changes
}

// RunsAndChanges sums the case's runs (runs: by scope key) and its scopes'
// effective-state changes. Per scope the counts may differ (an org's event
// can move, for a course that follows the org, the roles that the course's
// own pending event would have moved); per case runs never exceed changes.
func (c *Case) RunsAndChanges(runs map[string]int) (r, changes int) {
	_, ch := c.Oracle()
	for _, org := range c.Orgs {
		r += runs[org]
		changes += ch[org]
		for _, k := range c.Courses[org] {
			r += runs[k]
			changes += ch[k]
		}
	}
	return r, changes
}

// Describe names the case for a failure message, with the seed to replay it.
func (c *Case) Describe(seed uint64) string {
	var saves []string
	for _, o := range c.Saves {
		saves = append(saves, fmt.Sprintf("#%d %s %s enabled=%v %s", o.ID, o.ScopeType, o.ScopeKey, o.Enabled, o.Choice))
	}
	return fmt.Sprintf("seed %d case %d: saves [%s], published %d, duplicated %d, lost %d",
		seed, c.ID, strings.Join(saves, ", "), c.Published, c.Dups, c.Lost)
}
