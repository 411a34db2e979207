package store

// ColType is a column kind as Django's model fields define it; each dialect
// renders it the way Django's migrations create it.
type ColType int

const (
	Int      ColType = iota // IntegerField, AutoField, ForeignKey to an AutoField
	BigInt                  // BigAutoField, BigIntegerField, ForeignKey to a BigAutoField
	Varchar                 // CharField(max_length=Size)
	Text                    // TextField (longtext on MySQL)
	Bool                    // BooleanField
	DateTime                // DateTimeField (datetime(6) on MySQL)
	JSON                    // JSONField
	Decimal                 // DecimalField(3,1), waffle's percent
	Blob                    // our own tables only
	UUID                    // UUIDField (uuid on MariaDB 10.7+ and PostgreSQL, char(32) elsewhere)
)

// Column is one column of a table.
type Column struct {
	Name string
	Type ColType
	Size int  // for Varchar
	Null bool // nullable
	Auto bool // auto-increment primary key
	PK   bool // primary key without auto-increment (multi-table inheritance)
}

// Index is a named index; Unique marks a unique constraint.
type Index struct {
	Name    string
	Columns []string
	Unique  bool
}

// Table is a table definition.
type Table struct {
	Name    string
	Columns []Column
	Indexes []Index
	Own     bool // an authz_consumer_* table this service owns
}

func col(name string, t ColType) Column { return Column{Name: name, Type: t} }
func vc(name string, size int) Column   { return Column{Name: name, Type: Varchar, Size: size} }
func null(c Column) Column              { c.Null = true; return c }
func autoID(t ColType) Column           { return Column{Name: "id", Type: t, Auto: true} }
func pkCol(name string, t ColType, size int) Column {
	return Column{Name: name, Type: t, Size: size, PK: true}
}
func idx(name string, cols ...string) Index  { return Index{Name: name, Columns: cols} }
func uniq(name string, cols ...string) Index { return Index{Name: name, Columns: cols, Unique: true} }

// OpenEdXTables are the Open edX tables the service reads and writes, with
// the columns it uses, as the real Django migrations make them (see
// ddl/*.sql, generated from such databases). In production Django owns
// them: the service only reads and writes rows, and `schema check` compares
// these columns with the live ones. Extra columns, indexes and foreign keys
// are Django's business.
var OpenEdXTables = []Table{
	{Name: UserTable, Columns: []Column{
		autoID(Int), vc("password", 128), null(col("last_login", DateTime)), col("is_superuser", Bool),
		vc("username", 150), vc("first_name", 150), vc("last_name", 150), vc("email", 254),
		col("is_staff", Bool), col("is_active", Bool), col("date_joined", DateTime),
	}},
	{Name: CourseOverviewTable, Columns: []Column{pkCol("id", Varchar, 255)}},
	{Name: LegacyRoleTable, Columns: []Column{
		autoID(Int), vc("org", 64), vc("course_id", 255), vc("role", 64), col("user_id", Int),
	}},
	{Name: FlagTable, Columns: []Column{
		autoID(Int), vc("name", 100), null(col("everyone", Bool)), null(Column{Name: "percent", Type: Decimal}),
		col("testing", Bool), col("superusers", Bool), col("staff", Bool), col("authenticated", Bool),
		col("languages", Text), col("rollout", Bool), col("note", Text), col("created", DateTime), col("modified", DateTime),
	}},
	overrideTable(CourseOverrideTable, "course_id"),
	overrideTable(OrgOverrideTable, "org"),
	{Name: PolicyTable, Columns: []Column{
		autoID(Int), vc("ptype", 255), vc("v0", 255), vc("v1", 255), vc("v2", 255), vc("v3", 255), vc("v4", 255), vc("v5", 255),
	}},
	{Name: ScopeTable, Columns: []Column{autoID(BigInt), null(vc("external_key", 255))}},
	{Name: CourseScopeTable, Columns: []Column{pkCol("scope_ptr_id", BigInt, 0), null(vc("course_overview_id", 255))}},
	{Name: SubjectTable, Columns: []Column{autoID(BigInt)}},
	{Name: UserSubjectTable, Columns: []Column{pkCol("subject_ptr_id", BigInt, 0), null(col("user_id", Int))}},
	{Name: ExtendedRuleTable, Columns: []Column{
		autoID(BigInt), vc("casbin_rule_key", 255), null(col("description", Text)), col("created_at", DateTime),
		col("updated_at", DateTime), null(col("metadata", JSON)), col("casbin_rule_id", Int),
		null(col("scope_id", BigInt)), null(col("subject_id", BigInt)),
	}},
	{Name: AuditTable, Columns: []Column{
		autoID(BigInt), vc("operation", 20), vc("subject", 255), vc("role", 255), vc("scope", 255),
		null(col("actor_id", Int)), col("timestamp", DateTime),
	}},
	{Name: RunTable, Columns: []Column{
		autoID(BigInt), vc("migration_type", 20), vc("scope_type", 20), vc("scope_key", 255), vc("status", 20),
		col("created_at", DateTime), col("updated_at", DateTime), null(col("completed_at", DateTime)), col("metadata", JSON),
	}},
	// The policy version every LMS/CMS enforcer polls: a new value makes
	// them reload the policy, so every run that changes rules writes one.
	{Name: PolicyCacheTable, Columns: []Column{autoID(BigInt), col("version", UUID)}},
}

func overrideTable(name, keyCol string) Table {
	return Table{Name: name, Columns: []Column{
		autoID(Int), col("change_date", DateTime), col("enabled", Bool), vc("waffle_flag", 255), vc(keyCol, 255),
		vc("override_choice", 3), col("note", Text), null(col("changed_by_id", Int)),
	}}
}

// OwnMigrations are the versioned steps of the service's own tables
// (authz_consumer_*): step i brings them to version i+1. Append only.
var OwnMigrations = [][]Table{
	// 1: schema version, event outcomes, parked events.
	{
		{Name: SchemaTable, Own: true, Columns: []Column{col("version", Int), col("applied_at", DateTime)}},
		{Name: EventTable, Own: true, Columns: []Column{
			autoID(BigInt), vc("event_id", 255), vc("topic", 255), col("partition_no", Int), col("offset_no", BigInt),
			vc("flag", 255), vc("scope_type", 20), vc("scope_key", 255), col("record_id", BigInt),
			vc("outcome", 20), null(col("run_id", BigInt)), vc("direction", 20), col("detail", Text),
			col("created_at", DateTime), col("updated_at", DateTime),
		}, Indexes: []Index{
			uniq("authz_consumer_event_event_id_uniq", "event_id"),
			idx("authz_consumer_event_record_idx", "scope_type", "scope_key", "record_id"),
		}},
		{Name: ParkedTable, Own: true, Columns: []Column{
			autoID(BigInt), vc("event_id", 255), vc("topic", 255), col("partition_no", Int), col("offset_no", BigInt),
			null(col("msg_key", Blob)), null(col("msg_value", Blob)), col("headers", Text), vc("reason", 64), col("detail", Text),
			col("parked_at", DateTime), null(col("redriven_at", DateTime)),
		}, Indexes: []Index{uniq("authz_consumer_parked_source_uniq", "topic", "partition_no", "offset_no")}},
	},
	// 2: the ledger of applied states: the state ("on": authz, "off":
	// legacy) this service last put each scope's roles into.
	{
		{Name: ScopeStateTable, Own: true, Columns: []Column{
			autoID(BigInt), vc("scope_type", 20), vc("scope_key", 255), vc("applied", 3),
			null(col("run_id", BigInt)), col("updated_at", DateTime),
		}, Indexes: []Index{uniq("authz_consumer_scope_state_scope_uniq", "scope_type", "scope_key")}},
	},
	// 3: the sweep's durable watermarks over the append-only override
	// tables, the floors below which it never reads (the newest rows when
	// the service first started: deploying it moves nothing), the ids below
	// each watermark that were not visible yet (gaps: rows that may still
	// commit), and the instance-wide flag state it last saw.
	{
		{Name: SweepTable, Own: true, Columns: []Column{
			pkCol("id", Int, 0), col("course_mark", BigInt), col("org_mark", BigInt),
			col("course_floor", BigInt), col("org_floor", BigInt), col("course_gaps", Text), col("org_gaps", Text),
			vc("everyone", 3), col("updated_at", DateTime),
		}},
	},
}

// SchemaVersion is the version of the service's own tables.
var SchemaVersion = len(OwnMigrations)

// OwnTables are the service's own tables at SchemaVersion.
var OwnTables = func() []Table {
	var out []Table
	for _, step := range OwnMigrations {
		out = append(out, step...)
	}
	return out
}()

// Names of the Open edX tables the service reads and writes, as the real
// Django migrations name them. Every query names tables by these.
const (
	UserTable           = "auth_user"
	CourseOverviewTable = "course_overviews_courseoverview"
	LegacyRoleTable     = "student_courseaccessrole" // the legacy course-team roles
	FlagTable           = "waffle_flag"
	CourseOverrideTable = "waffle_utils_waffleflagcourseoverridemodel"
	OrgOverrideTable    = "waffle_utils_waffleflagorgoverridemodel"
	PolicyTable         = "casbin_rule" // casbin-django-orm-adapter's CasbinRule.Meta.db_table
	ScopeTable          = "openedx_authz_scope"
	CourseScopeTable    = "openedx_authz_coursescope"
	SubjectTable        = "openedx_authz_subject"
	UserSubjectTable    = "openedx_authz_usersubject"
	ExtendedRuleTable   = "openedx_authz_extendedcasbinrule"
	AuditTable          = "openedx_authz_roleassignmentaudit"
	RunTable            = "openedx_authz_authzcourseauthoringmigrationrun"
	PolicyCacheTable    = "openedx_authz_policycachecontrol"
)

// Names of the service's own tables.
const (
	SchemaTable     = "authz_consumer_schema"      // the own tables' schema version
	EventTable      = "authz_consumer_event"       // one row per event handled: its outcome
	ParkedTable     = "authz_consumer_parked"      // events that could not be decoded
	ScopeStateTable = "authz_consumer_scope_state" // the ledger of applied states
	SweepTable      = "authz_consumer_sweep"       // the sweep's watermarks
)
