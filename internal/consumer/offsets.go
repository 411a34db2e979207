package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
)

// ErrGroupActive is returned by ResetOffsets while the group has live
// members: their next commit would overwrite the reset, and the broker only
// accepts commits from outside an empty group.
var ErrGroupActive = errors.New("consumer group has live members")

// ResetTarget says where ResetOffsets moves a group: to the first message at
// or after Time when Time is set, else to Offset (clamped to each
// partition's range: 0 means the start of the topic).
type ResetTarget struct {
	Time       time.Time
	Offset     int64
	Partitions []int // empty: every partition of the topic
}

// PartitionReset is the plan for one partition: From is the committed
// offset before (-1: nothing committed), To the offset after.
type PartitionReset struct {
	Partition int
	From      int64
	To        int64
	Start     int64 // first offset still in the log
	End       int64 // high watermark
}

// Offsets reads a group's position on a topic with the admin protocol.
// It is what `consumer replay` and the tests use; it never joins the group.
type Offsets struct {
	Client *kafka.Client
	Group  string
	Topic  string
}

// Partitions lists the topic's partition ids in order.
func (o Offsets) Partitions(ctx context.Context) ([]int, error) {
	md, err := o.Client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{o.Topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", o.Topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != o.Topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", o.Topic, t.Error)
		}
		ids := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
		sort.Ints(ids)
		return ids, nil
	}
	return nil, fmt.Errorf("metadata of %s: topic not found", o.Topic)
}

// Members returns the ids of the group's live members.
func (o Offsets) Members(ctx context.Context) ([]string, error) {
	resp, err := o.Client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{o.Group}})
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", o.Group, err)
	}
	var ids []string
	for _, g := range resp.Groups {
		if g.Error != nil {
			return nil, fmt.Errorf("describe group %s: %w", o.Group, g.Error)
		}
		for _, m := range g.Members {
			ids = append(ids, m.MemberID)
		}
	}
	return ids, nil
}

// Committed returns the group's committed offset per partition (-1 when
// none was committed).
func (o Offsets) Committed(ctx context.Context, partitions []int) (map[int]int64, error) {
	resp, err := o.Client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: o.Group,
		Topics:  map[string][]int{o.Topic: partitions},
	})
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", o.Group, err)
	}
	out := make(map[int]int64, len(partitions))
	if errors.Is(resp.Error, kafka.GroupIdNotFound) {
		// A group that never committed (some brokers answer so, others -1).
		for _, p := range partitions {
			out[p] = -1
		}
		return out, nil
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", o.Group, resp.Error)
	}
	for _, p := range resp.Topics[o.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetch offset of group %s partition %d: %w", o.Group, p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// Bounds returns the first and the end (high watermark) offset of each
// partition.
func (o Offsets) Bounds(ctx context.Context, partitions []int) (start, end map[int]int64, err error) {
	start, err = o.list(ctx, partitions, kafka.FirstOffset, time.Time{})
	if err != nil {
		return nil, nil, err
	}
	end, err = o.list(ctx, partitions, kafka.LastOffset, time.Time{})
	return start, end, err
}

// AtTime returns, per partition, the offset of the first message whose
// timestamp is at or after t; a partition with none is left out.
func (o Offsets) AtTime(ctx context.Context, partitions []int, t time.Time) (map[int]int64, error) {
	return o.list(ctx, partitions, 0, t)
}

// list sends one ListOffsets request with one query of one kind per
// partition (kafka.FirstOffset, kafka.LastOffset, or a time when at is set).
//
// kafka-go files each answer by the timestamp the broker echoes, and brokers
// echo -1 (read as "last") for earliest queries and a message time for
// latest ones, so the answer is picked by the kind that was asked.
func (o Offsets) list(ctx context.Context, partitions []int, kind int64, at time.Time) (map[int]int64, error) {
	reqs := make([]kafka.OffsetRequest, 0, len(partitions))
	for _, p := range partitions {
		if at.IsZero() {
			reqs = append(reqs, kafka.OffsetRequest{Partition: p, Timestamp: kind})
		} else {
			reqs = append(reqs, kafka.TimeOffsetOf(p, at))
		}
	}
	resp, err := o.Client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{o.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", o.Topic, err)
	}
	out := make(map[int]int64, len(partitions))
	for _, p := range resp.Topics[o.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("list offsets of %s partition %d: %w", o.Topic, p.Partition, p.Error)
		}
		found := int64(-1)
		for off := range p.Offsets {
			if off >= 0 {
				found = off
			}
		}
		switch {
		case found >= 0:
		case !at.IsZero():
			continue // no message at or after the time
		case kind == kafka.FirstOffset && p.LastOffset >= 0:
			found = p.LastOffset
		case kind == kafka.FirstOffset:
			found = p.FirstOffset
		default:
			found = p.LastOffset
		}
		out[p.Partition] = found
	}
	return out, nil
}

// Lag returns, per partition, how many messages the group has not
// committed yet (end - committed; a partition with no commit counts from
// its start).
func (o Offsets) Lag(ctx context.Context) (map[int]int64, error) {
	parts, err := o.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	pos, err := o.positions(ctx, parts)
	if err != nil {
		return nil, err
	}
	lag := make(map[int]int64, len(parts))
	for _, p := range parts {
		from := pos[p].From
		if from < 0 {
			from = pos[p].Start
		}
		lag[p] = max(pos[p].End-from, 0)
	}
	return lag, nil
}

// positions reads the committed offset and the log's bounds of each
// partition (To is left unset).
func (o Offsets) positions(ctx context.Context, parts []int) (map[int]PartitionReset, error) {
	committed, err := o.Committed(ctx, parts)
	if err != nil {
		return nil, err
	}
	start, end, err := o.Bounds(ctx, parts)
	if err != nil {
		return nil, err
	}
	out := make(map[int]PartitionReset, len(parts))
	for _, p := range parts {
		out[p] = PartitionReset{Partition: p, From: committed[p], Start: start[p], End: end[p]}
	}
	return out, nil
}

// PlanReset computes where ResetOffsets would move each partition, without
// changing anything.
func (o Offsets) PlanReset(ctx context.Context, target ResetTarget) ([]PartitionReset, error) {
	parts, err := o.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	if len(target.Partitions) > 0 {
		for _, p := range target.Partitions {
			if !slices.Contains(parts, p) {
				return nil, fmt.Errorf("topic %s has no partition %d (partitions: %v)", o.Topic, p, parts)
			}
		}
		parts = target.Partitions
	}
	pos, err := o.positions(ctx, parts)
	if err != nil {
		return nil, err
	}
	var atTime map[int]int64
	if !target.Time.IsZero() {
		if atTime, err = o.AtTime(ctx, parts, target.Time); err != nil {
			return nil, err
		}
	}
	plan := make([]PartitionReset, 0, len(parts))
	for _, p := range parts {
		r := pos[p]
		if target.Time.IsZero() {
			r.To = min(max(target.Offset, r.Start), r.End)
		} else if off, ok := atTime[p]; ok {
			r.To = off
		} else {
			r.To = r.End // nothing at or after the time: nothing to replay
		}
		plan = append(plan, r)
	}
	return plan, nil
}

// ResetOffsets commits the planned offsets for the group, as an operator
// does before a replay. It refuses with ErrGroupActive while the group has
// live members (stop the consumers first).
func (o Offsets) ResetOffsets(ctx context.Context, target ResetTarget) ([]PartitionReset, error) {
	members, err := o.Members(ctx)
	if err != nil {
		return nil, err
	}
	if len(members) > 0 {
		return nil, fmt.Errorf("reset offsets of group %s: %w (%d: stop every consumer of the group first)", o.Group, ErrGroupActive, len(members))
	}
	plan, err := o.PlanReset(ctx, target)
	if err != nil {
		return nil, err
	}
	commits := make([]kafka.OffsetCommit, 0, len(plan))
	for _, r := range plan {
		commits = append(commits, kafka.OffsetCommit{Partition: r.Partition, Offset: r.To})
	}
	resp, err := o.Client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID:      o.Group,
		GenerationID: -1, // a simple commit, from outside the (empty) group
		Topics:       map[string][]kafka.OffsetCommit{o.Topic: commits},
	})
	if err != nil {
		return nil, fmt.Errorf("commit offsets of group %s: %w", o.Group, err)
	}
	for _, p := range resp.Topics[o.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("commit offset of group %s partition %d: %w", o.Group, p.Partition, p.Error)
		}
	}
	return plan, nil
}
